//! Rendering podman-style log tags.
//!
//! podman passes `--log-opt tag=...` through Go's `text/template` with the
//! container's inspect data as `.` (`getLogTag` in
//! `libpod/oci_conmon_common.go`) and hands the result to conmon as
//! `--log-tag`. This module renders the small subset such tags use, without
//! a template engine:
//!
//! - literal text, copied as is;
//! - actions `{{ pipeline }}`, with optional whitespace inside the braces,
//!   Go's trim markers (`{{- ` trims the whitespace before the action,
//!   ` -}}` the whitespace after it) and comments (`{{/* ... */}}`);
//! - the fields `.ID`, `.Name`, `.ImageName`, `.Image` (podman's name for
//!   the image ID; `.ImageID`, Docker's name, is accepted too) and `.Pod`;
//! - decimal integer constants;
//! - the functions `truncate` (from containers/common's report helpers:
//!   `{{truncate .ID 12}}`, or piped, `{{.ID | truncate 12}}`) and Go's
//!   builtin `slice` (`{{slice .ID 0 12}}`), which is what a stock podman
//!   accepts in a log tag;
//! - pipelines `a | f x | g y`, where each stage receives the previous value
//!   as its last argument, as in Go.
//!
//! Anything else (other fields, other functions, parentheses, variables,
//! string literals, control structures) is refused with a [`LogTagError`]
//! naming the offending part.

use runtime_api::ContainerDescription;

use crate::ConmonDescription;

/// The container data a log tag template can refer to, a subset of podman's
/// inspect data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogTagData {
    /// The full container ID: `{{.ID}}`.
    pub id: String,
    /// The container name: `{{.Name}}`.
    pub name: String,
    /// The image name the container was created from: `{{.ImageName}}`.
    pub image_name: String,
    /// The image ID: `{{.Image}}` in podman, `{{.ImageID}}` in Docker.
    pub image_id: String,
    /// The ID of the container's pod, empty outside a pod: `{{.Pod}}`.
    pub pod: String,
}

impl LogTagData {
    /// The data a container's description carries: its ID and name, and
    /// the image and pod set through
    /// [`ConmonDescriptionExt`](crate::ConmonDescriptionExt) (empty when
    /// not set).
    pub fn of(container: &ContainerDescription) -> Self {
        let options = container.conmon_options();
        let text = |value: &Option<String>| value.clone().unwrap_or_default();
        Self {
            id: container.id().to_string(),
            name: container.name().to_string(),
            image_name: text(&options.image_name),
            image_id: text(&options.image_id),
            pod: text(&options.pod_id),
        }
    }

    /// The value of a field reference such as `.ID`, if known.
    fn field(&self, name: &str) -> Option<&str> {
        Some(match name {
            ".ID" => &self.id,
            ".Name" => &self.name,
            ".ImageName" => &self.image_name,
            ".Image" | ".ImageID" => &self.image_id,
            ".Pod" => &self.pod,
            _ => return None,
        })
    }
}

/// The container's log tag rendered against its own data, as podman's
/// `getLogTag` renders it before handing it to conmon; `None` without a
/// tag (an empty tag counts as none).
pub(crate) fn rendered_log_tag(
    container: &ContainerDescription,
) -> Result<Option<String>, LogTagError> {
    match container.log().tag.as_deref() {
        None | Some("") => Ok(None),
        Some(template) => render_log_tag(template, &LogTagData::of(container)).map(Some),
    }
}

/// Renders a podman `--log-opt tag=` template against `data`.
///
/// ```
/// use conmon_driver::{render_log_tag, LogTagData};
///
/// let data = LogTagData {
///     id: "0123456789abcdef0123".into(),
///     name: "web".into(),
///     ..LogTagData::default()
/// };
/// assert_eq!(render_log_tag("{{.Name}}/{{ .ID | truncate 12 }}", &data)?, "web/0123456789ab");
/// # Ok::<(), conmon_driver::LogTagError>(())
/// ```
///
/// # Errors
///
/// [`LogTagError::UnknownField`] naming a field the data does not carry;
/// [`LogTagError::Invalid`] naming any other bad part: an unknown function, an unclosed `{{`, a malformed number, a wrong
/// argument count or type, or an out-of-range `slice`.
pub fn render_log_tag(template: &str, data: &LogTagData) -> Result<String, LogTagError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    let mut trim_next_text = false;
    while let Some(open) = rest.find("{{") {
        let (text, after_open) = (&rest[..open], &rest[open + 2..]);
        let trim_left = has_trim_marker_after_open(after_open);
        push_text(&mut out, text, trim_next_text, trim_left);

        let Some(close) = after_open.find("}}") else {
            return Err(invalid(
                template,
                format!("unclosed action {:?}", &rest[open..]),
            ));
        };
        let mut body = &after_open[..close];
        if trim_left {
            body = &body[1..];
        }
        trim_next_text = has_trim_marker_before_close(body);
        if trim_next_text {
            body = &body[..body.len() - 1];
        }
        render_action(template, body, data, &mut out)?;
        rest = &after_open[close + 2..];
    }
    push_text(&mut out, rest, trim_next_text, false);
    Ok(out)
}

/// `{{- ` : a dash right after the braces, followed by whitespace.
fn has_trim_marker_after_open(after_open: &str) -> bool {
    let mut chars = after_open.chars();
    chars.next() == Some('-') && chars.next().is_some_and(char::is_whitespace)
}

/// ` -}}` : a dash right before the braces, preceded by whitespace.
fn has_trim_marker_before_close(body: &str) -> bool {
    let mut chars = body.chars().rev();
    chars.next() == Some('-') && chars.next().is_some_and(char::is_whitespace)
}

fn push_text(out: &mut String, mut text: &str, trim_start: bool, trim_end: bool) {
    if trim_start {
        text = text.trim_start();
    }
    if trim_end {
        text = text.trim_end();
    }
    out.push_str(text);
}

fn invalid(template: &str, problem: String) -> LogTagError {
    LogTagError::Invalid {
        template: template.to_string(),
        problem,
    }
}

/// Why a log tag template cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogTagError {
    /// The template names a field the container's data does not carry.
    #[error("log tag template {template:?}: unknown field {field}")]
    UnknownField {
        /// The whole template.
        template: String,
        /// The field, as written (`.Config.Labels`).
        field: String,
    },
    /// Anything else this renderer refuses: an unknown function, an
    /// unclosed action, a malformed number, a wrong argument.
    #[error("log tag template {template:?}: {problem}")]
    Invalid {
        /// The whole template.
        template: String,
        /// What is wrong, quoting the bad part.
        problem: String,
    },
}

/// A token inside an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'t> {
    /// `.Name`: a field of the data.
    Field(&'t str),
    /// `truncate`: a function name.
    Ident(&'t str),
    /// `12`, `-3`: an integer constant, as written.
    Number(&'t str),
    /// `|`
    Pipe,
}

/// A value flowing through a pipeline: borrowed text or an integer.
#[derive(Debug, Clone, Copy)]
enum Value<'d> {
    Text(&'d str),
    Int(i64),
}

fn tokenize<'t>(template: &str, body: &'t str) -> Result<Vec<Token<'t>>, LogTagError> {
    let mut tokens = Vec::new();
    let mut rest = body.trim_start();
    while let Some(c) = rest.chars().next() {
        let word_len = |s: &str| {
            s.find(|c: char| c.is_whitespace() || c == '|')
                .unwrap_or(s.len())
        };
        let (token, len) = if c == '|' {
            (Token::Pipe, 1)
        } else {
            let len = word_len(rest);
            let word = &rest[..len];
            let token = if let Some(path) = word.strip_prefix('.') {
                let name_ok = !path.is_empty()
                    && path
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
                if !name_ok {
                    return Err(invalid(template, format!("unsupported operand {word:?}")));
                }
                Token::Field(word)
            } else if c.is_ascii_digit() || c == '-' || c == '+' {
                if word.parse::<i64>().is_err() {
                    return Err(invalid(template, format!("bad number {word:?}")));
                }
                Token::Number(word)
            } else if c.is_ascii_alphabetic() || c == '_' {
                if !word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(invalid(template, format!("unsupported operand {word:?}")));
                }
                Token::Ident(word)
            } else {
                return Err(invalid(template, format!("unsupported operand {word:?}")));
            };
            (token, len)
        };
        tokens.push(token);
        rest = rest[len..].trim_start();
    }
    Ok(tokens)
}

fn render_action(
    template: &str,
    body: &str,
    data: &LogTagData,
    out: &mut String,
) -> Result<(), LogTagError> {
    let trimmed = body.trim();
    if trimmed.starts_with("/*") {
        if trimmed.ends_with("*/") && trimmed.len() >= 4 {
            return Ok(());
        }
        return Err(invalid(
            template,
            format!("unclosed comment {{{{{body}}}}}"),
        ));
    }
    let tokens = tokenize(template, body)?;
    if tokens.is_empty() {
        return Err(invalid(template, format!("empty action {{{{{body}}}}}")));
    }
    let mut value: Option<Value<'_>> = None;
    for command in tokens.split(|t| *t == Token::Pipe) {
        value = Some(eval_command(template, command, value, data)?);
    }
    match value {
        Some(Value::Text(text)) => out.push_str(text),
        Some(Value::Int(n)) => {
            use std::fmt::Write;
            let _ = write!(out, "{n}");
        }
        None => return Err(invalid(template, format!("empty action {{{{{body}}}}}"))),
    }
    Ok(())
}

fn eval_operand<'d>(
    template: &str,
    token: Token<'_>,
    data: &'d LogTagData,
) -> Result<Value<'d>, LogTagError> {
    match token {
        Token::Field(name) => {
            data.field(name)
                .map(Value::Text)
                .ok_or_else(|| LogTagError::UnknownField {
                    template: template.to_string(),
                    field: name.to_string(),
                })
        }
        Token::Number(text) => text
            .parse()
            .map(Value::Int)
            .map_err(|_| invalid(template, format!("bad number {text:?}"))),
        Token::Ident(name) => Err(invalid(
            template,
            format!("function {name:?} used as an argument (parentheses are not supported)"),
        )),
        Token::Pipe => Err(invalid(template, "misplaced \"|\"".to_owned())),
    }
}

/// Evaluates one pipeline stage; `piped` is the previous stage's value.
fn eval_command<'d>(
    template: &str,
    command: &[Token<'_>],
    piped: Option<Value<'d>>,
    data: &'d LogTagData,
) -> Result<Value<'d>, LogTagError> {
    let Some((first, args)) = command.split_first() else {
        return Err(invalid(template, "empty command in pipeline".to_owned()));
    };
    let Token::Ident(function) = *first else {
        // A plain operand: only valid alone, at the start of a pipeline.
        if !args.is_empty() {
            return Err(invalid(
                template,
                format!(
                    "{} is not a function and takes no arguments",
                    describe(*first)
                ),
            ));
        }
        if piped.is_some() {
            return Err(invalid(
                template,
                format!(
                    "cannot pipe into {}, which is not a function",
                    describe(*first)
                ),
            ));
        }
        return eval_operand(template, *first, data);
    };
    let mut values = Vec::with_capacity(args.len() + 1);
    for arg in args {
        values.push(eval_operand(template, *arg, data)?);
    }
    values.extend(piped);
    match function {
        "truncate" => truncate(template, &values),
        "slice" => slice(template, &values),
        other => Err(invalid(template, format!("unknown function {other:?}"))),
    }
}

fn describe(token: Token<'_>) -> String {
    match token {
        Token::Field(s) | Token::Ident(s) | Token::Number(s) => s.to_owned(),
        Token::Pipe => "|".to_owned(),
    }
}

/// `truncate TEXT N` or `TEXT | truncate N`: the first N bytes of TEXT
/// (backing off to a character boundary), TEXT itself when shorter.
fn truncate<'d>(template: &str, args: &[Value<'d>]) -> Result<Value<'d>, LogTagError> {
    let (text, n) = match *args {
        [Value::Text(text), Value::Int(n)] | [Value::Int(n), Value::Text(text)] => (text, n),
        _ => {
            return Err(invalid(
                template,
                format!(
                    "truncate takes a text and a length, got {} argument(s) {args:?}",
                    args.len()
                ),
            ))
        }
    };
    let n = usize::try_from(n)
        .map_err(|_| invalid(template, format!("bad number {n} for truncate: negative")))?;
    Ok(Value::Text(prefix_at_boundary(text, n)))
}

/// Go's `slice TEXT [START [END]]`, on bytes; indices must fall on
/// character boundaries here.
fn slice<'d>(template: &str, args: &[Value<'d>]) -> Result<Value<'d>, LogTagError> {
    let Some((&Value::Text(text), bounds)) = args.split_first() else {
        return Err(invalid(template, "slice takes a text first".to_owned()));
    };
    let mut indices = [0, text.len()];
    if bounds.len() > 2 {
        return Err(invalid(
            template,
            "slice takes at most two indices".to_owned(),
        ));
    }
    for (slot, bound) in indices.iter_mut().zip(bounds) {
        let Value::Int(i) = *bound else {
            return Err(invalid(
                template,
                format!("slice index {bound:?} is not a number"),
            ));
        };
        *slot = usize::try_from(i)
            .map_err(|_| invalid(template, format!("bad number {i} for slice: negative")))?;
    }
    let [start, end] = indices;
    text.get(start..end).map(Value::Text).ok_or_else(|| {
        invalid(
            template,
            format!("slice [{start}:{end}] out of range for {text:?}"),
        )
    })
}

fn prefix_at_boundary(text: &str, n: usize) -> &str {
    if n >= text.len() {
        return text;
    }
    let mut end = n;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> LogTagData {
        LogTagData {
            id: "4f1c7a9e2b3d5f60718293a4b5c6d7e8f90112233445566778899aabbccddeeff".into(),
            name: "web".into(),
            image_name: "docker.io/library/nginx:latest".into(),
            image_id: "605c77e624ddb75e6110f997c58876baa13f8754486b461117934b24a9dc3a85".into(),
            pod: "".into(),
        }
    }

    #[test]
    fn renders_each_form() {
        let table = [
            ("", ""),
            ("plain text", "plain text"),
            (
                "{{.ID}}",
                "4f1c7a9e2b3d5f60718293a4b5c6d7e8f90112233445566778899aabbccddeeff",
            ),
            ("{{.Name}}", "web"),
            ("{{.ImageName}}", "docker.io/library/nginx:latest"),
            (
                "{{.ImageID}}",
                "605c77e624ddb75e6110f997c58876baa13f8754486b461117934b24a9dc3a85",
            ),
            (
                "{{.Image}}",
                "605c77e624ddb75e6110f997c58876baa13f8754486b461117934b24a9dc3a85",
            ),
            ("[{{.Pod}}]", "[]"),
            ("{{ .Name }}", "web"),
            ("{{\t.Name\n}}", "web"),
            ("app-{{.Name}}-{{.Name}}", "app-web-web"),
            ("{{.ID | truncate 12}}", "4f1c7a9e2b3d"),
            ("{{ .ID|truncate 12 }}", "4f1c7a9e2b3d"),
            ("{{truncate .ID 12}}", "4f1c7a9e2b3d"),
            ("{{truncate .Name 12}}", "web"),
            ("{{truncate .Name 3}}", "web"),
            ("{{truncate .Name 0}}", ""),
            ("{{.ID | truncate 20 | truncate 4}}", "4f1c"),
            ("{{slice .ID 0 12}}", "4f1c7a9e2b3d"),
            ("{{slice .Name 1}}", "eb"),
            ("{{slice .Name}}", "web"),
            ("{{12}}", "12"),
            ("a {{- .Name -}} b", "awebb"),
            ("a  {{- .Name}}", "aweb"),
            ("{{.Name -}}  z", "webz"),
            ("x{{/* a comment */}}y", "xy"),
            ("{{.Name}}}}", "web}}"),
            ("a}}b", "a}}b"),
        ];
        for (template, expected) in table {
            let got =
                render_log_tag(template, &data()).unwrap_or_else(|e| panic!("{template:?}: {e}"));
            assert_eq!(got, expected, "{template:?}");
        }
    }

    #[test]
    fn truncate_backs_off_to_a_character_boundary() {
        let data = LogTagData {
            name: "héllo".into(),
            ..LogTagData::default()
        };
        let got = render_log_tag("{{truncate .Name 2}}", &data);
        assert_eq!(got.ok().as_deref(), Some("h"));
    }

    #[test]
    fn refuses_bad_templates_naming_the_bad_part() {
        let table = [
            ("{{.Nope}}", "unknown field .Nope"),
            ("{{.id}}", "unknown field .id"),
            ("{{.Config.Labels}}", "unknown field .Config.Labels"),
            ("{{upper .Name}}", "unknown function \"upper\""),
            ("{{.Name | lower}}", "unknown function \"lower\""),
            ("tag-{{.Name", "unclosed action \"{{.Name\""),
            ("{{.Name}}-{{", "unclosed action \"{{\""),
            ("{{.ID | truncate 12x}}", "bad number \"12x\""),
            (
                "{{truncate .ID 99999999999999999999}}",
                "bad number \"99999999999999999999\"",
            ),
            ("{{truncate .ID -1}}", "bad number -1"),
            ("{{truncate .ID}}", "truncate takes a text and a length"),
            ("{{truncate .ID 1 2}}", "truncate takes a text and a length"),
            ("{{slice .Name 2 9}}", "slice [2:9] out of range"),
            ("{{slice 1 .Name}}", "slice takes a text first"),
            ("{{}}", "empty action"),
            ("{{   }}", "empty action"),
            ("{{.Name | }}", "empty command in pipeline"),
            ("{{| .Name}}", "empty command in pipeline"),
            ("{{.Name .ID}}", ".Name is not a function"),
            ("{{.Name | .ID}}", "cannot pipe into .ID"),
            ("{{$x := .Name}}", "unsupported operand \"$x\""),
            ("{{(.Name)}}", "unsupported operand \"(.Name)\""),
            ("{{\"lit\"}}", "unsupported operand \"\\\"lit\\\"\""),
            ("{{if .Name}}x{{end}}", "unknown function \"if\""),
            ("{{.}}", "unsupported operand \".\""),
            ("{{/* open }}", "unclosed comment"),
        ];
        for (template, fragment) in table {
            match render_log_tag(template, &data()) {
                Err(e) => {
                    let msg = e.to_string();
                    assert!(
                        msg.contains(fragment),
                        "{template:?}: {msg:?} lacks {fragment:?}"
                    );
                    assert!(
                        msg.contains(&format!("{template:?}")),
                        "{msg:?} names the template"
                    );
                }
                Ok(other) => panic!("{template:?} gave {other:?}"),
            }
        }
    }
}
