//! TLS to the collector, for both transports: the trust anchors and client identity an `https`
//! exporter uses, read from the PEM files the configuration names (or the system's trust store),
//! and a rustls connector for the HTTP client.
//!
//! Everything here runs when an `https` exporter is built, on the export thread of the process
//! that uses it: nothing at import, nothing shared across a fork, no process-wide rustls state
//! (the *ring* provider is passed explicitly; tonic picks *ring* itself, the only one compiled).

use std::error::Error;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::config::{PemFile, TlsFiles};

/// Validated TLS material for one exporter.
pub struct Material {
    pub roots: RootCertStore,
    pub client: Option<ClientIdentity>,
}

/// The mTLS client certificate chain and key, parsed, and as the PEM text tonic takes.
pub struct ClientIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

/// Read and check the files. An `Err` is one line naming the variable and the file.
pub fn load(files: &TlsFiles) -> Result<Material, String> {
    let roots = match &files.ca {
        Some(ca) => {
            let pem = read(ca)?;
            let mut roots = RootCertStore::empty();
            for cert in certificates(ca, &pem)? {
                roots.add(cert).map_err(|e| format!("{} {:?}: not a usable CA certificate ({e})", ca.var, ca.path))?;
            }
            roots
        }
        None => system_roots()?,
    };
    let client = match &files.client {
        None => None,
        Some((cert, key)) => {
            let cert_pem = read(cert)?;
            let key_pem = read(key)?;
            let chain = certificates(cert, &cert_pem)?;
            let parsed = PrivateKeyDer::from_pem_slice(&key_pem)
                .map_err(|e| format!("{} {:?}: no PEM private key in it ({e})", key.var, key.path))?;
            Some(ClientIdentity { chain, key: parsed, cert_pem, key_pem })
        }
    };
    Ok(Material { roots, client })
}

fn read(f: &PemFile) -> Result<Vec<u8>, String> {
    std::fs::read(&f.path).map_err(|e| format!("cannot read {} {:?} ({e})", f.var, f.path))
}

fn certificates(f: &PemFile, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} {:?}: not PEM certificates ({e})", f.var, f.path))?;
    if certs.is_empty() {
        return Err(format!("{} {:?}: no PEM certificate in it", f.var, f.path));
    }
    Ok(certs)
}

/// The system's trust store (and `SSL_CERT_FILE` / `SSL_CERT_DIR`), for an `https` endpoint
/// without `OTEL_EXPORTER_OTLP_CERTIFICATE`.
fn system_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let why = found.errors.first().map(|e| format!(" ({e})")).unwrap_or_default();
        return Err(format!("no CA certificate to trust: OTEL_EXPORTER_OTLP_CERTIFICATE is not set and the system trust store is empty{why}"));
    }
    Ok(roots)
}

/// The rustls client configuration for OTLP/HTTP.
pub fn http_config(m: Material) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(m.roots);
    let config = match m.client {
        None => builder.with_no_client_auth(),
        Some(id) => builder.with_client_auth_cert(id.chain, id.key).map_err(|e| format!("the client certificate and key do not go together ({e})"))?,
    };
    Ok(Arc::new(config))
}

/// ureq's TLS hook: the handshake runs on the connected socket, under ureq's timeouts.
pub struct HttpConnector(pub Arc<ClientConfig>);

impl ureq::TlsConnector for HttpConnector {
    fn connect(&self, dns_name: &str, mut io: Box<dyn ureq::ReadWrite>) -> Result<Box<dyn ureq::ReadWrite>, ureq::Error> {
        let host = dns_name.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(dns_name);
        let name = ServerName::try_from(host.to_string()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut conn = ClientConnection::new(self.0.clone(), name).map_err(io::Error::other)?;
        conn.complete_io(&mut io)?;
        Ok(Box::new(TlsStream(StreamOwned::new(conn, io))))
    }
}

struct TlsStream(StreamOwned<ClientConnection, Box<dyn ureq::ReadWrite>>);

impl ureq::ReadWrite for TlsStream {
    fn socket(&self) -> Option<&TcpStream> {
        self.0.get_ref().socket()
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl std::fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsStream")
    }
}

/// The TLS failure behind an export error, if that is what it was: a certificate the client
/// does not trust, a client certificate the collector refused, no common protocol. None of these
/// mends itself within a retry budget, so they are not retried (the next batch tries again).
pub fn failure<'a>(error: &'a (dyn Error + 'static)) -> Option<&'a rustls::Error> {
    let mut e = error;
    loop {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // io::Error's own `source()` skips the error it wraps; `cause` looks at that one too.
        e = cause(e)?;
    }
}

/// An error and its causes on one line (`a: b: c`), skipping a cause its parent already quotes;
/// io::Error's wrapped error counts as a cause.
pub fn describe(error: &(dyn Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut e = error;
    while let Some(next) = cause(e) {
        let text = next.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        e = next;
    }
    out
}

fn cause<'a>(e: &'a (dyn Error + 'static)) -> Option<&'a (dyn Error + 'static)> {
    match e.downcast_ref::<io::Error>() {
        Some(io) => io.get_ref().map(|inner| inner as &(dyn Error + 'static)),
        None => e.source(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PemFile;

    fn pem(var: &str, path: &std::path::Path) -> PemFile {
        PemFile { var: var.into(), path: path.into() }
    }

    #[test]
    fn bad_files_are_one_line_naming_the_variable() {
        let dir = std::env::temp_dir().join(format!("ferrotel-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "not a certificate\n").unwrap();
        let missing = dir.join("missing.pem");
        let ca = |p: &std::path::Path| TlsFiles { ca: Some(pem("OTEL_EXPORTER_OTLP_CERTIFICATE", p)), client: None };
        let e = load(&ca(&missing)).err().unwrap();
        assert!(e.starts_with("cannot read OTEL_EXPORTER_OTLP_CERTIFICATE") && e.contains("missing.pem"), "{e}");
        let e = load(&ca(&garbage)).err().unwrap();
        assert!(e.contains("OTEL_EXPORTER_OTLP_CERTIFICATE") && e.contains("no PEM certificate"), "{e}");
        assert!(!e.contains('\n'));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_tls_failure_is_found_through_io_errors() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let wrapped: ureq::Error = io::Error::new(io::ErrorKind::InvalidData, tls.clone()).into();
        assert_eq!(failure(&wrapped), Some(&tls));
        let plain: ureq::Error = io::Error::from(io::ErrorKind::ConnectionRefused).into();
        assert_eq!(failure(&plain), None);
    }

    #[test]
    fn describe_names_each_cause_once() {
        #[derive(Debug)]
        struct Outer(io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("transport error")
            }
        }
        impl Error for Outer {
            fn source(&self) -> Option<&(dyn Error + 'static)> {
                Some(&self.0)
            }
        }
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        // io::Error displays as the error it wraps: said once, not twice.
        let e = Outer(io::Error::new(io::ErrorKind::InvalidData, tls));
        assert_eq!(describe(&e), "transport error: invalid peer certificate: UnknownIssuer");
        assert_eq!(failure(&e).map(|t| t.to_string()).as_deref(), Some("invalid peer certificate: UnknownIssuer"));
    }
}
