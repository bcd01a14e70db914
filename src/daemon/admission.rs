//! The gateway-wide limit on connections (`[gateway] max_connections`), shared by every SSL
//! server.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// Counter of accepted clients across all SSL servers. Clones share the count.
#[derive(Clone, Debug)]
pub(crate) struct Admission {
    max: u32,
    active: Arc<AtomicU32>,
}

impl Admission {
    pub(crate) fn new(max: u32) -> Self {
        Self {
            max,
            active: Arc::new(AtomicU32::new(0)),
        }
    }

    /// Takes one slot, or returns false when `max` clients are already connected.
    pub(crate) fn try_admit(&self) -> bool {
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |active| {
                (active < self.max).then_some(active + 1)
            })
            .is_ok()
    }

    /// Gives back a slot taken by [`Admission::try_admit`].
    pub(crate) fn release(&self) {
        let _ = self
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |active| {
                active.checked_sub(1)
            });
    }

    pub(crate) fn max(&self) -> u32 {
        self.max
    }

    pub(crate) fn active(&self) -> u32 {
        self.active.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_stops_at_max() {
        let admission = Admission::new(2);
        assert!(admission.try_admit());
        assert!(admission.try_admit());
        assert!(!admission.try_admit());
        assert_eq!(admission.active(), 2);
    }

    #[test]
    fn release_frees_a_slot_for_every_clone() {
        let admission = Admission::new(1);
        let other_server = admission.clone();
        assert!(admission.try_admit());
        assert!(!other_server.try_admit());
        admission.release();
        assert!(other_server.try_admit());
    }

    #[test]
    fn release_never_goes_below_zero() {
        let admission = Admission::new(1);
        admission.release();
        assert_eq!(admission.active(), 0);
        assert!(admission.try_admit());
        assert!(!admission.try_admit());
    }
}
