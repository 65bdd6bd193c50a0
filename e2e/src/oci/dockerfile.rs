//! The final stage of a multi-stage Dockerfile, as `confab-image` builds it.
//!
//! Owns: splitting a Dockerfile into logical lines (comments, `# syntax`
//! directives, blank lines and `\` continuations), into stages, and reading
//! the final stage into a typed [`FinalStage`]. Of the build stages it reads
//! only which `/out/...` folders they create with `install -d` (the runtime's
//! `/out/data`); what they compile is the caller's business.
//!
//! The drift guard: every instruction of the final stage is either understood
//! here or refused with a [`DockerfileError`] — never skipped — so a change
//! to a Dockerfile that the local builder would not reproduce fails the build
//! instead of yielding a different image. Must not touch files or processes.

use std::collections::BTreeSet;

/// The final stage, reduced to what the image is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinalStage {
    /// Its `FROM` image, e.g. `gcr.io/distroless/cc-debian12:nonroot`.
    pub base: String,
    /// `COPY --from=<stage>` instructions, in order.
    pub copies: Vec<CopyFrom>,
    /// `USER`, as written (`65532:65532`).
    pub user: Option<String>,
    /// `EXPOSE`d ports with their protocol (`8080/tcp`).
    pub exposed: Vec<String>,
    /// `ENTRYPOINT` (exec form only: there is no shell in the image).
    pub entrypoint: Option<Vec<String>>,
    /// `CMD` (exec form only).
    pub cmd: Option<Vec<String>>,
    /// `WORKDIR` (absolute).
    pub workdir: Option<String>,
    /// `ENV` settings in order; a later one for the same name wins.
    pub env: Vec<(String, String)>,
    /// Paths under `/out/` that the build stages create as empty folders
    /// (`install -d /out/data` gives `data`).
    pub out_dirs: BTreeSet<String>,
}

/// `COPY --from=STAGE [--chown=U[:G]] SRC DEST`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyFrom {
    /// The Dockerfile line it starts on, for error messages.
    pub line: usize,
    pub stage: String,
    /// Numeric owner; `None` is root (0:0).
    pub chown: Option<(u32, u32)>,
    pub src: String,
    /// Absolute; a trailing `/` means "into this folder".
    pub dest: String,
}

/// Why a Dockerfile's final stage cannot be built locally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerfileError {
    #[error("no FROM instruction: not a Dockerfile")]
    NoFrom,
    #[error(
        "line {line}: the final stage uses {keyword}, which confab-image does not \
         reproduce; teach e2e/src/oci/dockerfile.rs what it means to the image, or move it \
         to the build stage"
    )]
    UnsupportedInstruction { line: usize, keyword: String },
    #[error(
        "line {line}: {keyword}: {what} is not supported by confab-image \
         (e2e/src/oci/dockerfile.rs)"
    )]
    UnsupportedForm {
        line: usize,
        keyword: String,
        what: String,
    },
    #[error("line {line}: {keyword}: {what}")]
    Malformed {
        line: usize,
        keyword: String,
        what: String,
    },
    #[error("line {line}: COPY --from={stage}: no earlier stage has that name")]
    UnknownStage { line: usize, stage: String },
}

/// One instruction on its logical line.
#[derive(Debug)]
struct Instruction {
    line: usize,
    /// Upper-cased.
    keyword: String,
    args: String,
}

#[derive(Debug)]
struct Stage {
    /// `FROM image [AS name]`.
    from: Instruction,
    name: Option<String>,
    body: Vec<Instruction>,
}

impl FinalStage {
    /// Parses `text` and returns its last stage.
    pub fn parse(text: &str) -> Result<FinalStage, DockerfileError> {
        let mut stages = stages(logical_lines(text))?;
        let last = stages.pop().ok_or(DockerfileError::NoFrom)?;
        let names: BTreeSet<&str> = stages.iter().filter_map(|s| s.name.as_deref()).collect();
        let out_dirs = stages
            .iter()
            .flat_map(|s| &s.body)
            .filter(|i| i.keyword == "RUN")
            .flat_map(|i| installed_dirs(&i.args))
            .collect();
        let mut stage = FinalStage {
            base: from_image(&last.from)?,
            copies: Vec::new(),
            user: None,
            exposed: Vec::new(),
            entrypoint: None,
            cmd: None,
            workdir: None,
            env: Vec::new(),
            out_dirs,
        };
        for i in &last.body {
            stage.apply(i, &names)?;
        }
        Ok(stage)
    }

    fn apply(&mut self, i: &Instruction, stages: &BTreeSet<&str>) -> Result<(), DockerfileError> {
        if i.keyword != "ARG" && has_variable(&i.args) {
            return Err(unsupported(i, "variable substitution"));
        }
        match i.keyword.as_str() {
            // Declares a build argument; nothing in the final stage uses one.
            "ARG" => {}
            "COPY" => {
                let copy = parse_copy(i)?;
                if !stages.contains(copy.stage.as_str()) {
                    return Err(DockerfileError::UnknownStage {
                        line: i.line,
                        stage: copy.stage,
                    });
                }
                self.copies.push(copy);
            }
            "USER" => self.user = Some(single_word(i)?),
            "EXPOSE" => self.exposed.extend(parse_ports(i)?),
            "ENTRYPOINT" => {
                self.entrypoint = Some(exec_form(i)?);
                // As in Docker: a new ENTRYPOINT resets an inherited CMD.
                self.cmd = None;
            }
            "CMD" => self.cmd = Some(exec_form(i)?),
            "WORKDIR" => {
                let dir = single_word(i)?;
                if !dir.starts_with('/') {
                    return Err(unsupported(i, "a relative WORKDIR"));
                }
                self.workdir = Some(dir);
            }
            "ENV" => self.env.extend(parse_env(i)?),
            _ => {
                return Err(DockerfileError::UnsupportedInstruction {
                    line: i.line,
                    keyword: i.keyword.clone(),
                });
            }
        }
        Ok(())
    }
}

/// Logical lines with their first physical line number: comments and blank
/// lines dropped (also inside a continuation, as Docker does), lines ending
/// in `\` joined with the next.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (n, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (body, continues) = match trimmed.strip_suffix('\\') {
            Some(body) => (body, true),
            None => (trimmed, false),
        };
        let (start, mut joined) = open.take().unwrap_or((n + 1, String::new()));
        if !joined.is_empty() {
            joined.push(' ');
        }
        joined.push_str(body.trim_end());
        if continues {
            open = Some((start, joined));
        } else {
            out.push((start, joined));
        }
    }
    out.extend(open);
    out
}

fn stages(lines: Vec<(usize, String)>) -> Result<Vec<Stage>, DockerfileError> {
    let mut stages: Vec<Stage> = Vec::new();
    for (line, text) in lines {
        let (keyword, args) = text.split_once(char::is_whitespace).unwrap_or((&text, ""));
        let i = Instruction {
            line,
            keyword: keyword.to_ascii_uppercase(),
            args: args.trim().to_string(),
        };
        if i.keyword == "FROM" {
            let words: Vec<&str> = i.args.split_whitespace().collect();
            let name = match words.as_slice() {
                [_, kw, name] if kw.eq_ignore_ascii_case("as") => Some(name.to_string()),
                _ => None,
            };
            stages.push(Stage {
                from: i,
                name,
                body: Vec::new(),
            });
        } else if let Some(stage) = stages.last_mut() {
            stage.body.push(i);
        } else if i.keyword != "ARG" {
            // Only ARG may come before the first FROM.
            return Err(DockerfileError::NoFrom);
        }
    }
    Ok(stages)
}

fn from_image(from: &Instruction) -> Result<String, DockerfileError> {
    let words: Vec<&str> = from.args.split_whitespace().collect();
    match words.as_slice() {
        [flag, ..] if flag.starts_with("--") => Err(unsupported(from, &format!("the flag {flag}"))),
        [image, ..] if has_variable(image) => Err(unsupported(from, "variable substitution")),
        [image] => Ok(image.to_string()),
        [image, kw, _] if kw.eq_ignore_ascii_case("as") => Ok(image.to_string()),
        _ => Err(malformed(from, "expected FROM IMAGE [AS NAME]")),
    }
}

fn parse_copy(i: &Instruction) -> Result<CopyFrom, DockerfileError> {
    if i.args.starts_with('[') {
        return Err(unsupported(i, "the JSON form"));
    }
    let (mut stage, mut chown) = (None, None);
    let mut paths = Vec::new();
    for word in i.args.split_whitespace() {
        if let Some(v) = word.strip_prefix("--from=") {
            stage = Some(v.to_string());
        } else if let Some(v) = word.strip_prefix("--chown=") {
            chown =
                Some(parse_chown(v).ok_or_else(|| {
                    unsupported(i, &format!("--chown={v} (use numeric UID[:GID])"))
                })?);
        } else if word.starts_with("--") {
            return Err(unsupported(i, &format!("the flag {word}")));
        } else {
            paths.push(word.to_string());
        }
    }
    let stage =
        stage.ok_or_else(|| unsupported(i, "COPY from the build context (only --from=<stage>)"))?;
    let [src, dest]: [String; 2] = paths
        .try_into()
        .map_err(|_| unsupported(i, "anything but exactly one source and one destination"))?;
    if !dest.starts_with('/') {
        return Err(unsupported(i, "a relative destination"));
    }
    Ok(CopyFrom {
        line: i.line,
        stage,
        chown,
        src,
        dest,
    })
}

fn parse_chown(v: &str) -> Option<(u32, u32)> {
    match v.split_once(':') {
        Some((u, g)) => Some((u.parse().ok()?, g.parse().ok()?)),
        // Docker: a UID alone is also the GID.
        None => v.parse().ok().map(|u| (u, u)),
    }
}

fn parse_ports(i: &Instruction) -> Result<Vec<String>, DockerfileError> {
    let ports: Vec<String> = i
        .args
        .split_whitespace()
        .map(|p| {
            let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            match (num.parse::<u16>(), proto) {
                (Ok(n), "tcp" | "udp" | "sctp") if n > 0 => Ok(format!("{n}/{proto}")),
                _ => Err(malformed(i, &format!("{p} is not PORT[/tcp|udp|sctp]"))),
            }
        })
        .collect::<Result<_, _>>()?;
    if ports.is_empty() {
        return Err(malformed(i, "no port"));
    }
    Ok(ports)
}

fn exec_form(i: &Instruction) -> Result<Vec<String>, DockerfileError> {
    if !i.args.starts_with('[') {
        return Err(unsupported(
            i,
            "the shell form (the image has no shell; write [\"...\"])",
        ));
    }
    serde_json::from_str(&i.args)
        .map_err(|e| malformed(i, &format!("not a JSON array of strings: {e}")))
}

fn parse_env(i: &Instruction) -> Result<Vec<(String, String)>, DockerfileError> {
    let words = shell_words(&i.args).ok_or_else(|| malformed(i, "unbalanced quotes"))?;
    let legacy = words.first().is_some_and(|w| !w.contains('='));
    if legacy {
        // `ENV NAME value with spaces`
        let (name, value) = i
            .args
            .split_once(char::is_whitespace)
            .ok_or_else(|| malformed(i, "no value"))?;
        return Ok(vec![(name.to_string(), value.trim().to_string())]);
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(malformed(i, &format!("{w} is not NAME=VALUE"))),
        })
        .collect()
}

/// Splits on whitespace outside double or single quotes, dropping the quotes
/// and honouring `\"` inside double quotes. `None`: a quote is left open.
fn shell_words(s: &str) -> Option<Vec<String>> {
    let (mut words, mut cur, mut quote, mut any) = (Vec::new(), String::new(), None, false);
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if any {
                    words.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, '"' | '\'') => (quote, any) = (Some(c), true),
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => cur.push(chars.next()?),
            (_, c) => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(cur);
    }
    quote.is_none().then_some(words)
}

fn single_word(i: &Instruction) -> Result<String, DockerfileError> {
    match i.args.split_whitespace().collect::<Vec<_>>().as_slice() {
        [w] => Ok(w.to_string()),
        _ => Err(malformed(i, "expected exactly one argument")),
    }
}

/// `$NAME` or `${...}`: the local builder does not expand build arguments.
fn has_variable(s: &str) -> bool {
    s.as_bytes()
        .windows(2)
        .any(|w| w[0] == b'$' && (w[1] == b'{' || w[1] == b'_' || w[1].is_ascii_alphabetic()))
}

/// Folders that `install -d DIR...` creates under `/out/` in a RUN line.
fn installed_dirs(run: &str) -> Vec<String> {
    run.split(['&', '|', ';'])
        .map(|cmd| cmd.split_whitespace().collect::<Vec<_>>())
        .filter(|w| w.first() == Some(&"install"))
        .filter(|w| {
            w.iter().any(|f| {
                *f == "--directory"
                    || (f.starts_with('-') && !f.starts_with("--") && f.contains('d'))
            })
        })
        .flat_map(|w| {
            w.into_iter()
                .filter_map(|a| a.strip_prefix("/out/"))
                .map(|p| p.trim_end_matches('/').to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn unsupported(i: &Instruction, what: &str) -> DockerfileError {
    DockerfileError::UnsupportedForm {
        line: i.line,
        keyword: i.keyword.clone(),
        what: what.to_string(),
    }
}

fn malformed(i: &Instruction, what: &str) -> DockerfileError {
    DockerfileError::Malformed {
        line: i.line,
        keyword: i.keyword.clone(),
        what: what.to_string(),
    }
}

#[cfg(test)]
#[path = "dockerfile_tests.rs"]
mod tests;
