pub mod daemon;

pub fn placeholder() {}
