//! The tokio driver: listeners, TUN devices, routes, the address pool, timers and signals.

pub mod pool;
