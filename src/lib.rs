pub fn placeholder() {}

pub mod proto;
