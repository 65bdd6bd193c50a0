//! The repository's two Dockerfiles parse to what the images must be, and
//! what the local builder would not reproduce is refused.

use super::*;

const RUNTIME: &str = include_str!("../../../chat-runtime/Dockerfile");
const OPERATOR: &str = include_str!("../../../operator/Dockerfile");

/// A final stage on distroless with `body` after its FROM.
fn with_final(body: &str) -> String {
    format!(
        "FROM rust AS build\nRUN cargo build && install -D x /out/x\n\
         FROM gcr.io/distroless/cc-debian12:nonroot\n{body}\n"
    )
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_runtime_dockerfile() {
    let stage = FinalStage::parse(RUNTIME).unwrap();
    assert_eq!(stage.base, "gcr.io/distroless/cc-debian12:nonroot");
    assert_eq!(stage.user.as_deref(), Some("65532:65532"));
    assert_eq!(stage.exposed, ["8080/tcp"]);
    assert_eq!(
        stage.entrypoint,
        Some(strings(&["/usr/local/bin/chat-runtime"]))
    );
    assert_eq!(stage.cmd, None);
    assert_eq!(stage.workdir, None);
    assert_eq!(stage.env, []);
    assert_eq!(stage.out_dirs, BTreeSet::from(["data".to_string()]));
    let copies: Vec<_> = stage
        .copies
        .iter()
        .map(|c| (c.stage.as_str(), c.chown, c.src.as_str(), c.dest.as_str()))
        .collect();
    assert_eq!(
        copies,
        [
            (
                "build",
                None,
                "/out/chat-runtime",
                "/usr/local/bin/chat-runtime"
            ),
            ("build", Some((65532, 65532)), "/out/data", "/data"),
        ]
    );
}

#[test]
fn the_operator_dockerfile() {
    let stage = FinalStage::parse(OPERATOR).unwrap();
    assert_eq!(stage.base, "gcr.io/distroless/cc-debian12:nonroot");
    assert_eq!(stage.user.as_deref(), Some("65532:65532"));
    assert_eq!(stage.exposed, ["8080/tcp"]);
    assert_eq!(
        stage.entrypoint,
        Some(strings(&["/usr/local/bin/confab-operator"]))
    );
    assert!(stage.out_dirs.is_empty());
    assert_eq!(stage.copies.len(), 1);
    let c = &stage.copies[0];
    assert_eq!(
        (c.src.as_str(), c.dest.as_str(), c.chown),
        (
            "/out/confab-operator",
            "/usr/local/bin/confab-operator",
            None
        )
    );
}

#[test]
fn instructions_it_does_not_reproduce_are_refused() {
    for (keyword, line) in [
        ("RUN", "RUN echo hi"),
        ("VOLUME", "VOLUME /data"),
        ("HEALTHCHECK", "HEALTHCHECK CMD [\"/bin/true\"]"),
        ("LABEL", "LABEL a=b"),
        ("ADD", "ADD x /x"),
        ("ONBUILD", "ONBUILD RUN x"),
    ] {
        let err = FinalStage::parse(&with_final(line)).unwrap_err();
        assert_eq!(
            err,
            DockerfileError::UnsupportedInstruction {
                line: 4,
                keyword: keyword.to_string()
            },
            "{line}"
        );
        assert!(err.to_string().contains("does not reproduce"), "{err}");
    }
}

#[test]
fn forms_it_does_not_reproduce_are_refused() {
    for line in [
        "ENTRYPOINT /usr/local/bin/x",
        "CMD run --fast",
        "COPY x /x",
        "COPY --from=build --chmod=0700 /out/x /x",
        "COPY --from=build --chown=nonroot /out/x /x",
        "COPY --from=build /out/a /out/b /x/",
        "COPY --from=build /out/x x",
        "USER ${UID}",
        "WORKDIR app",
    ] {
        let err = FinalStage::parse(&with_final(line)).unwrap_err();
        assert!(
            matches!(err, DockerfileError::UnsupportedForm { line: 4, .. }),
            "{line}: {err}"
        );
    }
    let err = FinalStage::parse(&with_final("COPY --from=builder /out/x /x")).unwrap_err();
    assert_eq!(
        err,
        DockerfileError::UnknownStage {
            line: 4,
            stage: "builder".into()
        }
    );
    let err = FinalStage::parse("ARG V=1\nFROM --platform=linux/arm64 debian\n").unwrap_err();
    assert!(
        matches!(err, DockerfileError::UnsupportedForm { line: 2, .. }),
        "{err}"
    );
}

#[test]
fn continuations_comments_and_the_rest_of_the_final_stage() {
    let text = with_final(
        "# syntax is only a comment here\n\
         \n\
         ENV A=1 B=\"two words\" \\\n\
         # a comment inside a continuation is dropped\n\
         \x20   C=3\n\
         ENV LEGACY some value\n\
         ENV A=4\n\
         WORKDIR /srv\n\
         expose 80/udp 443\n\
         ARG IGNORED=1\n\
         ENTRYPOINT [\"/x\", \"serve\"]\n\
         CMD [\"--port\", \"80\"]",
    );
    let stage = FinalStage::parse(&text).unwrap();
    let env: Vec<(&str, &str)> = stage
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        env,
        [
            ("A", "1"),
            ("B", "two words"),
            ("C", "3"),
            ("LEGACY", "some value"),
            ("A", "4")
        ]
    );
    assert_eq!(stage.workdir.as_deref(), Some("/srv"));
    assert_eq!(stage.exposed, ["80/udp", "443/tcp"]);
    assert_eq!(stage.entrypoint, Some(strings(&["/x", "serve"])));
    assert_eq!(stage.cmd, Some(strings(&["--port", "80"])));
}

#[test]
fn an_entrypoint_resets_an_earlier_cmd() {
    let stage = FinalStage::parse(&with_final("CMD [\"a\"]\nENTRYPOINT [\"/b\"]")).unwrap();
    assert_eq!(stage.cmd, None);
}

#[test]
fn folders_the_build_stage_installs() {
    assert_eq!(
        installed_dirs(
            "--mount=type=cache cargo build && install -D t/x /out/x && install -d /out/data /out/b/ /tmp/c"
        ),
        ["data", "b"]
    );
    assert_eq!(
        installed_dirs("install -m 0755 -d /out/d; install /out/x /y"),
        ["d"]
    );
    assert!(installed_dirs("install -D target/x /out/x").is_empty());
}

#[test]
fn not_a_dockerfile() {
    assert_eq!(
        FinalStage::parse("# nothing\n"),
        Err(DockerfileError::NoFrom)
    );
    assert_eq!(
        FinalStage::parse("RUN x\nFROM a\n"),
        Err(DockerfileError::NoFrom)
    );
    let err = FinalStage::parse("FROM a b c\n").unwrap_err();
    assert!(
        matches!(err, DockerfileError::Malformed { line: 1, .. }),
        "{err}"
    );
}
