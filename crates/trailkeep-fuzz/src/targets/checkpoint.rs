//! The `checkpoint` target: checkpoint bodies, signed notes, and verifier and signer key texts.
//!
//! Properties: nothing panics; a body that parses prints back to exactly the same text and parses to
//! the same checkpoint (the format is strict, so it has one spelling); a note that opens has the body
//! the checkpoint prints, and each signature line it accepts is the one our own key writes for that body
//! (Ed25519 signatures are deterministic), so no note opens with a signature the key did not make; a key
//! text that parses prints as a key text that parses to the same key.

use arbitrary::{Result, Unstructured};
use trailkeep_core::checkpoint::{Checkpoint, Ed25519Signer, Signer, Verifier, open_note, sign_note};

use super::bundle::{bystander, signer};
use super::{Target, shape};

pub struct CheckpointTarget;

fn note(body: &str, signers: &[&dyn Signer]) -> String {
    sign_note(body, signers).unwrap()
}

impl Target for CheckpointTarget {
    fn name(&self) -> &'static str {
        "checkpoint"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        let ours = signer();
        let unknown = Ed25519Signer::from_seed("cosigner.example", &[3; 32]).unwrap();
        let body =
            Checkpoint { origin: "fuzz.test/acme".into(), size: 24, root: [0xab; 32], extensions: vec![] }.to_body();
        let extended =
            Checkpoint {
                origin: "fuzz.test/acme".into(), size: 0, root: [0; 32], extensions: vec!["ext — 1".into()]
            }
            .to_body();
        vec![
            body.clone(),
            note(&body, &[&ours]),
            note(&body, &[&unknown, &ours]),
            note(&extended, &[&ours]),
            ours.verifier().to_string(),
            ours.to_signer_key(),
        ]
        .into_iter()
        .map(String::into_bytes)
        .collect()
    }

    fn dictionary(&self) -> &'static [&'static str] {
        &[
            "\n",
            "\n\n",
            "\u{2014} ",
            "fuzz.test ",
            "fuzz.test/acme\n",
            "+",
            "PRIVATE+KEY+",
            "=",
            "==",
            "AQ",
            "0\n",
            "01\n",
        ]
    }

    fn generate(&self, u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
        let origin = if u.arbitrary()? { "fuzz.test/acme".to_owned() } else { u.arbitrary::<String>()? };
        let extensions = (0..u.int_in_range(0..=2)?).map(|_| u.arbitrary::<String>()).collect::<Result<Vec<_>>>()?;
        let checkpoint = Checkpoint { origin, size: u.arbitrary()?, root: u.arbitrary()?, extensions };
        let body = checkpoint.to_body();
        let ours = signer();
        let rogue = Ed25519Signer::from_seed("fuzz.test", &[u.arbitrary::<u8>()? | 1; 32]).unwrap();
        let text = match u.int_in_range(0..=3)? {
            0 => body,
            // A note signed by a key with our name but another secret: it must not open.
            1 => sign_note(&body, &[&rogue]).unwrap_or(body),
            2 => sign_note(&body, &[&ours]).unwrap_or(body),
            _ => {
                // Our signature moved onto another body.
                let genuine = note("fuzz.test/acme\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", &[&ours]);
                let signatures = genuine.rsplit_once("\n\n").map_or("", |(_, s)| s).to_owned();
                format!("{body}\n{signatures}")
            }
        };
        Ok(text.into_bytes())
    }

    fn run(&self, input: &[u8]) -> String {
        let text = String::from_utf8_lossy(input);
        let mut signature = String::new();

        match Checkpoint::parse_body(&text) {
            Ok(checkpoint) => {
                let printed = checkpoint.to_body();
                assert_eq!(printed, text, "a checkpoint body prints back differently");
                assert_eq!(
                    Checkpoint::parse_body(&printed).as_ref(),
                    Ok(&checkpoint),
                    "a printed checkpoint reads back"
                );
                signature.push_str(&format!("body-ok:{}", checkpoint.extensions.len().min(3)));
            }
            Err(e) => signature.push_str(&format!("body-err:{}", shape(&e.to_string()))),
        }

        let ours = signer();
        match open_note(&text, &[ours.verifier(), bystander().verifier()]) {
            Ok((checkpoint, verified)) => {
                let split = text.rfind("\n\n").expect("an opened note has a signature block");
                let body = &text[..split + 1];
                assert_eq!(checkpoint.to_body(), body, "an opened note's checkpoint prints another body");
                for by in &verified {
                    assert_eq!((by.name.as_str(), by.key_id), (ours.name(), ours.key_id()), "only our key signs");
                    let genuine = note(body, &[&ours]);
                    let line = genuine.rsplit_once("\n\n").map(|(_, s)| s).unwrap();
                    assert!(text[split + 2..].split_inclusive('\n').any(|l| l == line), "a signature we did not make");
                }
                signature.push_str(&format!(";note-ok:{}", verified.len()));
            }
            Err(e) => signature.push_str(&format!(";note-err:{}", shape(&e.to_string()))),
        }

        if let Ok(verifier) = Verifier::parse(&text) {
            let printed = verifier.to_string();
            let again = Verifier::parse(&printed).expect("a printed verifier key reads back");
            assert_eq!(
                (again.name(), again.key_id(), again.public_key()),
                (verifier.name(), verifier.key_id(), verifier.public_key())
            );
            signature.push_str(";verifier");
        }
        if let Ok(key) = Ed25519Signer::parse(&text) {
            let again = Ed25519Signer::parse(&key.to_signer_key()).expect("a printed signer key reads back");
            assert_eq!(again.verifier().to_string(), key.verifier().to_string());
            signature.push_str(";signer");
        }
        signature
    }
}
