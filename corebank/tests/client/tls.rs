//! HTTPS with a CA file generated for the test (rcgen), a TLS server
//! (tokio-rustls), and client certificates.

use std::sync::Arc;

use kiosk_corebank::{CoreBankClient, CoreBankError};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;

use crate::server::{KIOSK_ID, Reply, TestServer};
use crate::{now_ms, write_key};

struct Ca {
    cert: Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("self-signed");
        Ca { cert, key }
    }

    /// A leaf certificate for `names`, for a server or a client.
    fn issue(&self, names: &[&str], purpose: ExtendedKeyUsagePurpose) -> (Certificate, KeyPair) {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.extended_key_usages = vec![purpose];
        let cert = params.signed_by(&key, &self.cert, &self.key).expect("sign");
        (cert, key)
    }

    fn write(&self, dir: &tempfile::TempDir, name: &str) -> std::path::PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, self.cert.pem()).expect("write CA");
        path
    }
}

/// A TLS server on 127.0.0.1 with a certificate from `ca`; with `client_ca`,
/// it requires a client certificate from that CA.
async fn tls_server(ca: &Ca, client_ca: Option<&Ca>) -> TestServer {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (cert, key) = ca.issue(&["127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(client_ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(client_ca.cert.der().clone()).expect("client CA");
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .expect("verifier");
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    TestServer::start_with(
        Some(acceptor),
        Arc::new(|_| Reply::json(200, json!({"status": "ok", "time_ms": now_ms()}))),
    )
    .await
}

#[tokio::test]
async fn the_configured_ca_is_trusted() {
    let ca = Ca::new("Test Core Bank CA");
    let mut server = tls_server(&ca, None).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = kiosk_corebank::CoreBankConfig::new(server.https_url(), write_key(&dir));
    config.ca_file = Some(ca.write(&dir, "ca.pem"));
    let client = CoreBankClient::new(&config, KIOSK_ID).expect("client");
    let info = client.health().await.expect("health over TLS");
    assert_eq!(info.status, "ok");
    let r = server.next_request().await;
    assert!(r.signature_ok);
    assert!(!r.client_cert);
}

#[tokio::test]
async fn another_ca_is_not_trusted_and_nothing_is_sent() {
    let ca = Ca::new("Test Core Bank CA");
    let mut server = tls_server(&ca, None).await;
    let dir = tempfile::tempdir().unwrap();

    // A CA file that does not match.
    let mut config = kiosk_corebank::CoreBankConfig::new(server.https_url(), write_key(&dir));
    config.ca_file = Some(Ca::new("Some Other CA").write(&dir, "other.pem"));
    let e = CoreBankClient::new(&config, KIOSK_ID)
        .unwrap()
        .health()
        .await
        .expect_err("untrusted");
    assert!(matches!(e, CoreBankError::Tls { .. }), "{e:?}");
    assert!(e.is_transient() && !e.is_ambiguous() && e.needs_attention());

    // No CA file: the public web roots do not know the test CA either.
    config.ca_file = None;
    let e = CoreBankClient::new(&config, KIOSK_ID)
        .unwrap()
        .health()
        .await
        .expect_err("untrusted");
    assert!(matches!(e, CoreBankError::Tls { .. }), "{e:?}");

    assert!(server.received().is_empty(), "no request got through");
}

#[tokio::test]
async fn a_client_certificate_is_presented_when_configured() {
    let ca = Ca::new("Test Core Bank CA");
    let kiosk_ca = Ca::new("Test Kiosk CA");
    let mut server = tls_server(&ca, Some(&kiosk_ca)).await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = kiosk_ca.issue(
        &["K-0101-03.kiosk.example"],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let cert_file = dir.path().join("kiosk.crt");
    let key_file = dir.path().join("kiosk.key");
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();

    let mut config = kiosk_corebank::CoreBankConfig::new(server.https_url(), write_key(&dir));
    config.ca_file = Some(ca.write(&dir, "ca.pem"));
    config.client_cert_file = Some(cert_file);
    config.client_key_file = Some(key_file);
    assert_eq!(config.validate(), Ok(()));
    CoreBankClient::new(&config, KIOSK_ID)
        .unwrap()
        .health()
        .await
        .expect("mutual TLS");
    let r = server.next_request().await;
    assert!(r.client_cert && r.signature_ok);

    // Without it the server refuses the handshake. (With TLS 1.3 the client
    // learns of it only after writing its request, so this may be reported
    // as an ambiguous lost connection rather than a TLS error; either way it
    // fails and the server handled nothing.)
    config.client_cert_file = None;
    config.client_key_file = None;
    let e = CoreBankClient::new(&config, KIOSK_ID)
        .unwrap()
        .health()
        .await
        .expect_err("no client cert");
    assert!(
        matches!(
            e,
            CoreBankError::Tls { .. } | CoreBankError::ConnectionLost { .. }
        ),
        "{e:?}"
    );
    eprintln!("without a client certificate: {e:?}");
    assert!(e.is_transient());
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn a_mismatched_client_key_is_a_config_error() {
    let kiosk_ca = Ca::new("Test Kiosk CA");
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = kiosk_ca.issue(&["k1.kiosk.example"], ExtendedKeyUsagePurpose::ClientAuth);
    let (_, other_key) = kiosk_ca.issue(&["k2.kiosk.example"], ExtendedKeyUsagePurpose::ClientAuth);
    let cert_file = dir.path().join("kiosk.crt");
    let key_file = dir.path().join("kiosk.key");
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, other_key.serialize_pem()).unwrap();
    let mut config = kiosk_corebank::CoreBankConfig::new("https://127.0.0.1:1", write_key(&dir));
    config.client_cert_file = Some(cert_file);
    config.client_key_file = Some(key_file);
    let problems = config.validate().expect_err("mismatch");
    assert_eq!(
        problems.iter().map(|p| p.key).collect::<Vec<_>>(),
        ["client_key_file"]
    );
}
