pub mod tls;

#[cfg(test)]
pub(crate) mod test_pki;
pub mod session;
