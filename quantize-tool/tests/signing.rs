//! `keygen`, `sign` and `verify` on the command line with the committed digits model.

use std::path::{Path, PathBuf};
use std::process::Output;

fn tool(args: &[&Path]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ember-quantize")).args(args).output().expect("runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn sign_then_verify_and_refuse_another_key_or_a_modified_model() {
    let dir = std::env::temp_dir().join(format!("ember-signing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../targets/models/digits_int8.ember");
    let model = dir.join("digits.ember");
    std::fs::copy(committed, &model).unwrap();
    let (key, other) = (dir.join("key"), dir.join("other"));
    let public = |k: &Path| PathBuf::from(format!("{}.pub", k.display()));
    for k in [&key, &other] {
        let o = tool(&[Path::new("keygen"), Path::new("-o"), k]);
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!((std::fs::read(k).unwrap().len(), std::fs::read(public(k)).unwrap().len()), (64, 32));
    }
    let o = tool(&[Path::new("keygen"), Path::new("-o"), &key]);
    assert_eq!(o.status.code(), Some(5), "keygen overwrote a key: {}", text(&o));

    let verify = |k: &Path| tool(&[Path::new("verify"), &model, Path::new("--pubkey"), &public(k)]);
    let o = verify(&key);
    assert_eq!(o.status.code(), Some(3), "an unsigned model verifies: {}", text(&o));
    assert!(text(&o).contains("not signed"), "{}", text(&o));

    let o = tool(&[Path::new("sign"), &model, Path::new("--key"), &key]);
    assert!(o.status.success(), "{}", text(&o));
    let o = verify(&key);
    assert!(o.status.success(), "{}", text(&o));
    let o = verify(&other);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("signed by another key"), "{}", text(&o));

    let mut bytes = std::fs::read(&model).unwrap();
    bytes[100] ^= 0x10;
    std::fs::write(&model, &bytes).unwrap();
    let o = verify(&key);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("modified"), "{}", text(&o));
    std::fs::remove_dir_all(dir).unwrap();
}
