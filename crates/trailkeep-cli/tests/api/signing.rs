//! The checkpoint signing key: created once per data directory, kept secret on disk, published as a
//! signed-note verifier key by the API and the CLI.

use std::process::Command;

use trailkeep_core::checkpoint::{Signer, Verifier, sign_note};
use trailkeep_server::{App, Config};

use crate::helpers::spawn_app_with;

#[tokio::test(flavor = "multi_thread")]
async fn the_checkpoint_key_is_published_and_matches_the_key_on_disk() {
    let app = spawn_app_with(|c| c.deployment = "audit.example.test".into()).await;
    let anonymous = trailkeep_client::Client::new(&app.base_url, None).unwrap();
    let published = anonymous.checkpoint_key().await.unwrap();
    let verifier = Verifier::parse(published.trim()).expect("a signed-note verifier key");
    assert_eq!(verifier.name(), "audit.example.test");

    let path = app.data_dir.join("signing.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // The key on disk signs what the published key verifies.
    let text = std::fs::read_to_string(&path).unwrap();
    let signer = trailkeep_core::checkpoint::Ed25519Signer::parse(text.trim()).unwrap();
    assert_eq!(signer.key_id(), verifier.key_id());
    let note =
        sign_note("audit.example.test/acme\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", &[&signer]).unwrap();
    assert!(trailkeep_core::checkpoint::open_note(&note, &[verifier]).is_ok());
    assert!(!published.contains(text.trim()), "the secret key is never published");

    let url = app.base_url.clone();
    let cli = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_trailkeep")).args(["keys", "public", "--url", &url]).output().unwrap()
    })
    .await
    .unwrap();
    assert!(cli.status.success());
    assert_eq!(String::from_utf8(cli.stdout).unwrap(), published);
    app.stop().await;
}

#[tokio::test]
async fn a_restart_keeps_the_signing_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config { data_dir: dir.path().to_owned(), ..Config::default() };
    let first = App::build(&config).await.unwrap();
    let key = first.state.checkpoint_key.clone();
    first.state.store.shutdown().await;
    drop(first);
    let renamed = Config { deployment: "renamed.example".into(), ..config };
    let second = App::build(&renamed).await.unwrap();
    assert_eq!(second.state.checkpoint_key, key, "an existing key keeps its name and secret");
    second.state.store.shutdown().await;
}
