//! Receive coalescing, like a network card's interrupt moderation. After a burst of packets
//! from its clients, an SSL server's thread sleeps for a short pause before it waits for the
//! next packet. The packets that arrive during the pause are then handled in one wake.
//!
//! A server that is faster than its single client would otherwise wake for every one or two
//! packets. Each wake costs a context switch and a TUN write of its own. With the pause, one
//! wake receives several packets with one `recvmmsg` or `read` and writes them to the TUN
//! device as one coalesced packet (see [`super::tun_batch::TunSendBatch`]).
//!
//! Only a burst is followed by a pause, so a packet that arrives alone, such as an
//! interactive one, is handled at once. A packet that arrives during a pause waits for its
//! end.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use tracing::debug;

/// The number of packets written to the TUN device between two waits that counts as a
/// burst. A ping writes one.
const MIN_BURST: usize = 2;

/// How much later than requested Linux may end a sleep of a server's thread. The default
/// timer slack, 50 µs, would lengthen each pause by that much.
const TIMER_SLACK: Duration = Duration::from_micros(5);

/// Sets the calling thread's timer slack to [`TIMER_SLACK`], so that its pauses last about
/// as long as configured.
pub(super) fn set_timer_slack() {
    let nanos = TIMER_SLACK.as_nanos() as libc::c_ulong;
    // SAFETY: PR_SET_TIMERSLACK reads only its integer argument.
    let result = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, nanos) };
    if result != 0 {
        let error = io::Error::last_os_error();
        debug!(%error, "setting the timer slack failed; pauses last up to 50 µs longer");
    }
}

/// The state of receive coalescing for one SSL server.
#[derive(Debug)]
pub(super) struct Coalescing {
    /// The pause after a burst; zero turns coalescing off.
    pause: Duration,
    /// Packets from clients written to the TUN device since the task last waited.
    packets: usize,
    /// Pauses taken since the server started.
    pauses: u64,
}

impl Coalescing {
    pub(super) fn new(pause: Duration) -> Self {
        Self {
            pause,
            packets: 0,
            pauses: 0,
        }
    }

    /// Counts packets from clients that a wake wrote to the TUN device.
    pub(super) fn add(&mut self, packets: usize) {
        self.packets = self.packets.saturating_add(packets);
    }

    /// Returns the pauses taken since the server started.
    pub(super) fn pauses(&self) -> u64 {
        self.pauses
    }

    /// Returns the pause to take before the task waits for its next input, and starts a
    /// new count.
    fn pause_before_wait(&mut self) -> Option<Duration> {
        let packets = std::mem::take(&mut self.packets);
        if packets < MIN_BURST || self.pause.is_zero() {
            return None;
        }
        self.pauses += 1;
        Some(self.pause)
    }

    /// Polls `next` once; when it is not ready and a burst came before, blocks the thread
    /// for the pause and then awaits `next`.
    ///
    /// Blocking is right only on a thread that serves this SSL server alone, because every
    /// other task of the thread waits too.
    pub(super) async fn next<F: Future>(&mut self, next: F) -> F::Output {
        let mut next = pin!(next);
        let first = std::future::poll_fn(|cx| Poll::Ready(next.as_mut().poll(cx))).await;
        match first {
            Poll::Ready(output) => output,
            Poll::Pending => {
                if let Some(pause) = self.pause_before_wait() {
                    std::thread::sleep(pause);
                }
                next.await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn single_packet_takes_no_pause() {
        let mut coalescing = Coalescing::new(Duration::from_micros(100));
        coalescing.add(1);
        assert_eq!(coalescing.pause_before_wait(), None);
    }

    #[test]
    fn burst_takes_pause_once() {
        let mut coalescing = Coalescing::new(Duration::from_micros(100));
        coalescing.add(1);
        coalescing.add(1);
        assert_eq!(
            coalescing.pause_before_wait(),
            Some(Duration::from_micros(100))
        );
        assert_eq!(coalescing.pause_before_wait(), None);
        assert_eq!(coalescing.pauses(), 1);
    }

    #[test]
    fn zero_pause_turns_coalescing_off() {
        let mut coalescing = Coalescing::new(Duration::ZERO);
        coalescing.add(64);
        assert_eq!(coalescing.pause_before_wait(), None);
        assert_eq!(coalescing.pauses(), 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn ready_input_skips_pause() {
        let mut coalescing = Coalescing::new(Duration::from_secs(5));
        coalescing.add(10);
        let started = Instant::now();
        assert_eq!(coalescing.next(async { 7 }).await, 7);
        assert!(started.elapsed() < Duration::from_secs(1));
        // The count stays for the next wait, which still follows the burst.
        assert_eq!(coalescing.pause_before_wait(), Some(Duration::from_secs(5)));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn pending_input_without_burst_skips_pause() {
        let mut coalescing = Coalescing::new(Duration::from_secs(5));
        coalescing.add(1);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let started = Instant::now();
        let sender = tokio::spawn(async move { tx.send(3).unwrap() });
        assert_eq!(coalescing.next(rx).await.unwrap(), 3);
        assert!(started.elapsed() < Duration::from_secs(1));
        sender.await.unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn pending_input_waits_after_burst() {
        let pause = Duration::from_millis(50);
        let mut coalescing = Coalescing::new(pause);
        coalescing.add(2);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let started = Instant::now();
        // The sender fires on the same thread only after the first poll found nothing.
        let sender = tokio::spawn(async move { tx.send(3).unwrap() });
        let received = coalescing.next(rx).await.unwrap();
        assert_eq!(received, 3);
        assert!(started.elapsed() >= pause);
        sender.await.unwrap();
        assert_eq!(coalescing.pause_before_wait(), None);
    }
}
