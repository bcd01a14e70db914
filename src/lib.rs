pub mod proto;

pub fn placeholder() {}
