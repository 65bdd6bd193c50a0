//! The runtime's image from its real Dockerfile: the app layer, the config,
//! and the `/out` sources that cannot be resolved.

use super::*;

const RUNTIME: &str = include_str!("../../../chat-runtime/Dockerfile");

fn outs(pairs: &[(&str, &[u8])]) -> BTreeMap<String, Vec<u8>> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_vec()))
        .collect()
}

#[test]
fn the_runtime_app_layer() {
    let stage = FinalStage::parse(RUNTIME).unwrap();
    let tree = app_tree(&stage, &outs(&[("chat-runtime", b"\x7fELF...")])).unwrap();
    assert_eq!(
        tree.get("usr/local/bin/chat-runtime"),
        Some(&Node::File {
            mode: 0o755,
            owner: (0, 0),
            bytes: b"\x7fELF...".to_vec()
        })
    );
    assert_eq!(
        tree.get("data"),
        Some(&Node::Dir {
            mode: 0o755,
            owner: (NONROOT, NONROOT)
        })
    );
    let paths: Vec<&str> = tree.iter().map(|(p, _)| p).collect();
    assert_eq!(
        paths,
        [
            "data",
            "usr",
            "usr/local",
            "usr/local/bin",
            "usr/local/bin/chat-runtime"
        ]
    );
}

#[test]
fn the_runtime_config() {
    let stage = FinalStage::parse(RUNTIME).unwrap();
    let base = Base::for_image(&stage.base).unwrap();
    let c = config(base, &stage);
    assert_eq!(
        (c["architecture"].as_str(), c["os"].as_str()),
        (Some(ARCH), Some("linux"))
    );
    let c = &c["config"];
    assert_eq!(c["User"], "65532:65532");
    assert_eq!(c["Entrypoint"], json!(["/usr/local/bin/chat-runtime"]));
    assert_eq!(c["ExposedPorts"], json!({"8080/tcp": {}}));
    assert_eq!(c["WorkingDir"], "/home/nonroot");
    assert!(c.get("Cmd").is_none());
    let env = c["Env"].as_array().unwrap();
    assert!(
        env.iter()
            .any(|e| e.as_str().unwrap().starts_with("PATH=/usr/local/sbin:")),
        "{env:?}"
    );
}

#[test]
fn the_stage_env_overrides_the_base() {
    let text = "FROM gcr.io/distroless/cc-debian12:nonroot\nENV PATH=/bin RUST_LOG=info\n";
    let stage = FinalStage::parse(text).unwrap();
    let c = config(&DISTROLESS_CC_NONROOT, &stage);
    assert_eq!(
        c["config"]["Env"],
        json!([
            "PATH=/bin",
            "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
            "RUST_LOG=info"
        ])
    );
}

#[test]
fn out_sources_must_be_given_or_installed() {
    let stage = FinalStage::parse(RUNTIME).unwrap();
    assert_eq!(
        app_tree(&stage, &outs(&[])).unwrap_err(),
        ImageError::UnknownOutSource {
            line: 27,
            name: "chat-runtime".into()
        }
    );
    let err = app_tree(
        &stage,
        &outs(&[("chat-runtime", b""), ("confab-bench", b"")]),
    )
    .unwrap_err();
    assert_eq!(err, ImageError::UnusedOut("confab-bench".into()));
    let text = "FROM a AS build\nFROM gcr.io/distroless/cc-debian12:nonroot\nCOPY --from=build /src/x /x\n";
    let err = app_tree(&FinalStage::parse(text).unwrap(), &outs(&[])).unwrap_err();
    assert_eq!(
        err,
        ImageError::NotFromOut {
            line: 3,
            src: "/src/x".into()
        }
    );
}

#[test]
fn a_file_copied_into_a_folder_keeps_its_name() {
    let text = "FROM a AS build\nFROM gcr.io/distroless/cc-debian12:nonroot\nCOPY --from=build /out/x /bin/\n";
    let tree = app_tree(&FinalStage::parse(text).unwrap(), &outs(&[("x", b"1")])).unwrap();
    assert!(matches!(tree.get("bin/x"), Some(Node::File { .. })));
}

#[test]
fn only_known_bases() {
    assert_eq!(
        Base::for_image("gcr.io/distroless/static-debian12:nonroot").unwrap_err(),
        ImageError::UnsupportedBase("gcr.io/distroless/static-debian12:nonroot".into())
    );
    let skeleton = DISTROLESS_CC_NONROOT.skeleton();
    assert_eq!(
        skeleton.get("tmp"),
        Some(&Node::Dir {
            mode: 0o1777,
            owner: (0, 0)
        })
    );
    assert_eq!(
        skeleton.get("home/nonroot"),
        Some(&Node::Dir {
            mode: 0o700,
            owner: (NONROOT, NONROOT)
        })
    );
}

#[test]
fn scratch_is_empty_and_the_pause_dockerfile_parses() {
    let base = Base::for_image("scratch").unwrap();
    assert_eq!(base.skeleton(), Default::default());
    let text = include_str!("../../scripts/pause/Dockerfile");
    let stage = FinalStage::parse(text).unwrap();
    assert_eq!(stage.base, "scratch");
    assert_eq!(stage.entrypoint, Some(vec!["/pause".to_string()]));
    let c = config(base, &stage);
    assert_eq!(c["config"]["User"], "65535:65535");
}
