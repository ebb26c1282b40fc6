//! TLS for the fetch: the rustls client configuration, its crypto provider
//! (ring, trimmed), the trust store, and the connector that puts TLS under
//! ureq.
//!
//! Guarantees: only TLS 1.2 and 1.3 with the AES-GCM suites of ring's
//! default provider, ring's key exchange groups and every signature
//! algorithm it verifies; the trust store is the webpki roots plus every
//! certificate of `AGENT_INIT_CA_FILE` (read no further than 4 MiB, refused
//! with 78 when it is not PEM or holds no certificate); no client
//! certificate, so no signing code is linked. A certificate that does not
//! verify is told apart from other I/O failures ([`tls_cause`]) and named by
//! its reason ([`cert_reason`]), never by its content.

use super::FetchOptions;
use crate::base::error::{Error, Result};
use std::sync::Arc;
use std::time::Duration;
use ureq::unversioned::transport::time::{Duration as UDuration, Instant as UInstant};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport,
    TransportAdapter,
};

/// Largest `AGENT_INIT_CA_FILE` read (a full system bundle is about 220 KB).
const MAX_CA_FILE: u64 = 4 << 20;

/// The trust store: the webpki trust anchors (ready-made, nothing parsed at
/// run time), plus every certificate of `AGENT_INIT_CA_FILE`.
fn root_store(opts: &FetchOptions, timeout: Duration) -> Result<rustls::RootCertStore> {
    let mut store = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = &opts.ca_file {
        let bad =
            |why: &str| Error::Config(format!("AGENT_INIT_CA_FILE {}: {why}", path.display()));
        let (pem, _) = super::read_config("AGENT_INIT_CA_FILE", path, MAX_CA_FILE, timeout)?;
        let mut n = 0;
        for c in ureq::tls::parse_pem(pem.expose()) {
            match c {
                Ok(ureq::tls::PemItem::Certificate(c)) => {
                    store
                        .add(rustls::pki_types::CertificateDer::from(c.der()))
                        .map_err(|_| bad("holds a certificate that is not a valid CA"))?;
                    n += 1;
                }
                Ok(_) => {}
                Err(_) => return Err(bad("not valid PEM")),
            }
        }
        if n == 0 {
            return Err(bad("holds no certificate"));
        }
    }
    Ok(store)
}

/// The rustls client configuration: ring (less the key loader), TLS 1.2 and
/// 1.3, the trust store above, no client certificate.
pub(super) fn client_config(
    opts: &FetchOptions,
    timeout: Duration,
) -> Result<Arc<rustls::ClientConfig>> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(crypto_provider()))
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| Error::Internal(format!("TLS setup failed: {e}")))?
        .with_root_certificates(root_store(opts, timeout)?)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The last link of the connector chain: wraps the TCP stream (or the
/// CONNECT tunnel) in TLS for `https://` URLs. It stands in for ureq's own
/// rustls connector, which takes roots only as whole certificates to parse on
/// every run.
#[derive(Debug)]
pub(super) struct Tls(pub(super) Arc<rustls::ClientConfig>);

impl<In: Transport> Connector<In> for Tls {
    type Out = Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> std::result::Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = details.uri.host().unwrap_or_default();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let name = rustls::pki_types::ServerName::try_from(host)
            .map_err(|_| ureq::Error::Tls("invalid server name"))?
            .to_owned();
        let mut conn = rustls::ClientConnection::new(self.0.clone(), name)?;
        // The handshake gets what is left of the connect timeout.
        let mut timeout = details.timeout;
        if let (UDuration::Exact(after), UInstant::Exact(started)) = (timeout.after, details.now) {
            timeout.after = UDuration::Exact(after.saturating_sub(started.elapsed()));
        }
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(timeout);
        conn.complete_io(&mut sock)?;
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(TlsTransport {
            buffers,
            stream: rustls::StreamOwned { conn, sock },
        })))
    }
}

pub(super) struct TlsTransport {
    buffers: LazyBuffers,
    stream: rustls::StreamOwned<rustls::ClientConnection, TransportAdapter>,
}

impl std::fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsTransport")
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(
        &mut self,
        amount: usize,
        timeout: NextTimeout,
    ) -> std::result::Result<(), ureq::Error> {
        use std::io::Write;
        self.stream.get_mut().set_timeout(timeout);
        self.stream.write_all(&self.buffers.output()[..amount])?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> std::result::Result<bool, ureq::Error> {
        use std::io::Read;
        self.stream.get_mut().set_timeout(timeout);
        let amount = self.stream.read(self.buffers.input_append_buf())?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

/// ring's TLS algorithms, less two things the binary does not need:
/// - the private-key loader: agent-init presents no client certificate, and
///   without a key provider it carries no RSA or ECDSA signing code (~45 KB);
/// - ChaCha20-Poly1305: every TLS 1.3 server must offer AES-128-GCM
///   (RFC 8446 §9.1) and every TLS 1.2 server worth trusting offers an
///   ECDHE AES-GCM suite, so the AES-GCM suites alone reach them all, and
///   ring's ChaCha20 code (~45 KB) stays out.
///
/// Key exchange and signature verification are ring's defaults, unchanged:
/// X25519, P-256 and P-384; every signature a public CA chain uses.
fn crypto_provider() -> rustls::crypto::CryptoProvider {
    use rustls::crypto::ring::{cipher_suite, kx_group};
    rustls::crypto::CryptoProvider {
        cipher_suites: vec![
            cipher_suite::TLS13_AES_256_GCM_SHA384,
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ],
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1],
        signature_verification_algorithms: SIGNATURE_ALGORITHMS,
        secure_random: &SystemRandom,
        key_provider: &NoClientKey,
    }
}

/// Every signature algorithm rustls's ring provider verifies (a copy of its
/// private `SUPPORTED_SIG_ALGS`): written out because the only public way to
/// it, `default_provider()`, also links every cipher suite.
static SIGNATURE_ALGORITHMS: rustls::crypto::WebPkiSupportedAlgorithms = {
    use rustls::SignatureScheme as S;
    use webpki::ring as alg;
    rustls::crypto::WebPkiSupportedAlgorithms {
        all: &[
            alg::ECDSA_P256_SHA256,
            alg::ECDSA_P256_SHA384,
            alg::ECDSA_P384_SHA256,
            alg::ECDSA_P384_SHA384,
            alg::ED25519,
            alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
            alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
            alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
            alg::RSA_PKCS1_2048_8192_SHA256,
            alg::RSA_PKCS1_2048_8192_SHA384,
            alg::RSA_PKCS1_2048_8192_SHA512,
            alg::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
            alg::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
            alg::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
        ],
        mapping: &[
            (
                S::ECDSA_NISTP384_SHA384,
                &[alg::ECDSA_P384_SHA384, alg::ECDSA_P256_SHA384],
            ),
            (
                S::ECDSA_NISTP256_SHA256,
                &[alg::ECDSA_P256_SHA256, alg::ECDSA_P384_SHA256],
            ),
            (S::ED25519, &[alg::ED25519]),
            (
                S::RSA_PSS_SHA512,
                &[alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY],
            ),
            (
                S::RSA_PSS_SHA384,
                &[alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY],
            ),
            (
                S::RSA_PSS_SHA256,
                &[alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY],
            ),
            (S::RSA_PKCS1_SHA512, &[alg::RSA_PKCS1_2048_8192_SHA512]),
            (S::RSA_PKCS1_SHA384, &[alg::RSA_PKCS1_2048_8192_SHA384]),
            (S::RSA_PKCS1_SHA256, &[alg::RSA_PKCS1_2048_8192_SHA256]),
        ],
    }
};

/// The operating system's random source, through ring.
#[derive(Debug)]
struct SystemRandom;

impl rustls::crypto::SecureRandom for SystemRandom {
    fn fill(&self, buf: &mut [u8]) -> std::result::Result<(), rustls::crypto::GetRandomFailed> {
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), buf)
            .map_err(|_| rustls::crypto::GetRandomFailed)
    }
}

#[derive(Debug)]
struct NoClientKey;

impl rustls::crypto::KeyProvider for NoClientKey {
    fn load_private_key(
        &self,
        _: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> std::result::Result<std::sync::Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
        Err(rustls::Error::General(
            "agent-init presents no client certificate".into(),
        ))
    }
}

/// ureq hands on a rustls error raised during the handshake inside an
/// `io::Error`; take it out, so that a certificate that does not verify is
/// recognised as such (and not retried as an I/O failure).
pub(super) fn tls_cause(e: ureq::Error) -> ureq::Error {
    let ureq::Error::Io(io) = e else { return e };
    if !io
        .get_ref()
        .is_some_and(|inner| inner.is::<rustls::Error>())
    {
        return ureq::Error::Io(io);
    }
    let kind = io.kind();
    match io
        .into_inner()
        .map(|inner| inner.downcast::<rustls::Error>())
    {
        Some(Ok(tls)) => ureq::Error::Rustls(*tls),
        Some(Err(inner)) => ureq::Error::Io(std::io::Error::new(kind, inner)),
        None => ureq::Error::Io(kind.into()),
    }
}

pub(super) fn cert_reason(c: &rustls::CertificateError) -> &'static str {
    use rustls::CertificateError as C;
    match c {
        C::UnknownIssuer => "unknown issuer",
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "it is not valid for this host name"
        }
        C::Expired | C::ExpiredContext { .. } => "expired",
        C::NotValidYet | C::NotValidYetContext { .. } => "not valid yet",
        C::Revoked => "revoked",
        C::BadSignature => "bad signature",
        _ => "invalid certificate",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tls_provider_verifies_every_signature_rings_default_provider_does() {
        let ring = rustls::crypto::ring::default_provider();
        assert_eq!(
            format!("{:?}", crypto_provider().signature_verification_algorithms),
            format!("{:?}", ring.signature_verification_algorithms),
        );
        assert_eq!(
            format!("{:?}", crypto_provider().kx_groups),
            format!("{:?}", ring.kx_groups),
        );
    }

    #[test]
    fn the_tls_provider_offers_the_aes_gcm_suites_of_ring_and_no_chacha20() {
        let ours: Vec<_> = crypto_provider()
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect();
        let aes_gcm: Vec<_> = rustls::crypto::ring::default_provider()
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .filter(|s| !format!("{s:?}").contains("CHACHA20"))
            .collect();
        assert_eq!(ours.len(), 6);
        assert!(ours.iter().all(|s| aes_gcm.contains(s)), "{ours:?}");
        assert!(aes_gcm.iter().all(|s| ours.contains(s)), "{aes_gcm:?}");
    }
}
