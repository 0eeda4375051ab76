//! Properties of the log tag renderer and of exec user resolution, run by
//! `cargo test` on stable. The fuzz targets `log_tag` and `exec_user`
//! (`fuzz/`) check the same invariants on inputs libFuzzer finds. Nothing
//! here starts a container.

use conmon_driver::{
    render_log_tag, resolve_exec_user, resolve_exec_user_from_text, ExecUser, LogTagData,
    LogTagError,
};
use proptest::prelude::*;
use runtime_api::RuntimeError;

fn data() -> impl Strategy<Value = LogTagData> {
    (
        "[0-9a-f]{0,64}",
        ".{0,12}",
        "[a-z./:]{0,30}",
        "[0-9a-f]{0,64}",
        "[a-z0-9-]{0,10}",
    )
        .prop_map(|(id, name, image_name, image_id, pod)| LogTagData {
            id,
            name,
            image_name,
            image_id,
            pod,
        })
}

/// Templates made of the pieces the renderer knows and some it refuses.
fn template() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-z /_.:-]{0,6}",
        Just("{{.ID}}".to_owned()),
        Just("{{ .Name }}".to_owned()),
        Just("{{.ImageName}}".to_owned()),
        Just("{{.Image}}".to_owned()),
        Just("{{.Pod}}".to_owned()),
        Just("{{.Nope}}".to_owned()),
        Just("{{- .Name -}}".to_owned()),
        Just("{{/* note */}}".to_owned()),
        (0i64..80).prop_map(|n| format!("{{{{.ID | truncate {n}}}}}")),
        (0i64..20, 0i64..20).prop_map(|(a, b)| format!("{{{{slice .Name {a} {b}}}}}")),
        Just("{{".to_owned()),
        Just("}}".to_owned()),
        Just("{{upper .Name}}".to_owned()),
    ];
    proptest::collection::vec(piece, 0..6).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn rendering_never_panics_and_errors_quote_the_template(
        template in prop_oneof![template(), ".{0,40}"],
        data in data(),
    ) {
        let rendered = render_log_tag(&template, &data);
        match &rendered {
            Ok(out) => {
                if !template.contains("{{") {
                    prop_assert_eq!(out, &template);
                }
                let longest = [&data.id, &data.name, &data.image_name, &data.image_id, &data.pod]
                    .iter().map(|f| f.len()).max().unwrap_or(0).max(20);
                prop_assert!(out.len() <= template.len() + template.matches("{{").count() * longest);
            }
            Err(LogTagError::UnknownField { template: t, field }) => {
                prop_assert_eq!(t, &template);
                prop_assert!(template.contains(field.as_str()));
            }
            Err(LogTagError::Invalid { template: t, .. }) => prop_assert_eq!(t, &template),
        }
        // A comment before the template changes nothing; after it neither,
        // unless the template ends in a lone brace.
        let before = render_log_tag(&format!("{{{{/* c */}}}}{template}"), &data);
        prop_assert_eq!(before.as_ref().ok(), rendered.as_ref().ok());
        prop_assert_eq!(before.is_ok(), rendered.is_ok());
        if rendered.is_ok() && !template.ends_with('{') {
            let after = render_log_tag(&format!("{template}{{{{/* c */}}}}"), &data);
            prop_assert_eq!(after.ok(), rendered.ok());
        }
    }

    #[test]
    fn truncate_and_slice_follow_their_byte_rules(data in data(), n in 0usize..20, m in 0usize..20) {
        let name = data.name.as_str();
        let mut end = n.min(name.len());
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        let called = render_log_tag(&format!("{{{{truncate .Name {n}}}}}"), &data);
        prop_assert_eq!(called.as_deref(), Ok(&name[..end]));
        let piped = render_log_tag(&format!("{{{{ .Name | truncate {n} }}}}"), &data);
        prop_assert_eq!(piped.as_deref(), Ok(&name[..end]));
        let sliced = render_log_tag(&format!("{{{{slice .Name {m} {n}}}}}"), &data);
        match name.get(m..n) {
            Some(part) => prop_assert_eq!(sliced.as_deref(), Ok(part)),
            None => prop_assert!(matches!(sliced, Err(LogTagError::Invalid { .. })), "{:?}", sliced),
        }
        let literal = "tag-";
        let around = render_log_tag(&format!("{literal}{{{{.Name}}}}{literal}"), &data);
        prop_assert_eq!(around, Ok(format!("{literal}{name}{literal}")));
    }
}

/// A passwd line: name, uid and gid fields (sometimes malformed), home.
fn passwd_line() -> impl Strategy<Value = String> {
    (
        "[a-z]{1,4}|#[a-z]{1,3}|",
        "[0-9]{1,4}|-1|x|",
        "[0-9]{1,4}|",
        "(/[a-z]{1,5})?",
    )
        .prop_map(|(name, uid, gid, home)| format!("{name}:x:{uid}:{gid}:gecos:{home}:/bin/sh"))
}

fn group_line() -> impl Strategy<Value = String> {
    (
        "[a-z]{1,4}|#[a-z]{1,3}",
        "[0-9]{1,4}|x",
        proptest::collection::vec("[a-z]{1,4}", 0..3),
    )
        .prop_map(|(name, gid, members)| format!("{name}:x:{gid}:{}", members.join(",")))
}

fn file(line: BoxedStrategy<String>) -> impl Strategy<Value = Option<String>> {
    proptest::option::weighted(
        0.9,
        proptest::collection::vec(line, 0..6).prop_map(|lines| lines.join("\n")),
    )
}

fn spec() -> impl Strategy<Value = Option<String>> {
    proptest::option::weighted(
        0.9,
        "([a-z]{1,4}|[0-9]{1,4}|-1|99999999999)?(:([a-z]{1,4}|[0-9]{1,4}|-5))?",
    )
}

/// The same text with what the parser skips or trims added.
fn noisy(text: &str) -> String {
    let mut out = String::from("# a comment:x:0:0::/comment:/bin/sh\r\n\r\n   \nno colons here\n");
    for line in text.split('\n') {
        out.push_str("  ");
        out.push_str(line);
        out.push_str("\r\n#:x:0:0:::\n");
    }
    out
}

/// `part` as an id if it is a number in range.
fn numeric(part: &str) -> Option<u32> {
    part.parse::<u32>().ok().filter(|id| *id <= i32::MAX as u32)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn exec_user_resolution_invariants(
        passwd in file(passwd_line().boxed()),
        group in file(group_line().boxed()),
        spec in spec(),
    ) {
        let default = (1000, 1000, vec![10, 20]);
        let resolved =
            resolve_exec_user_from_text(passwd.as_deref(), group.as_deref(), spec.as_deref(), default.clone());
        let spec_text = spec.as_deref().unwrap_or("");
        let (user_part, group_part) = spec_text.split_once(':').unwrap_or((spec_text, ""));
        match &resolved {
            Ok(ExecUser { uid, gid, additional_gids, home }) => {
                prop_assert!(!home.is_empty());
                if let Some(id) = numeric(user_part) {
                    prop_assert_eq!(*uid, id);
                }
                if let Some(id) = numeric(group_part) {
                    prop_assert_eq!(*gid, id);
                }
                if !group_part.is_empty() {
                    prop_assert!(additional_gids.is_empty());
                }
                if spec_text.is_empty() {
                    prop_assert_eq!((*uid, *gid, additional_gids.clone()), default.clone());
                }
                let mut distinct = additional_gids.clone();
                distinct.sort_unstable();
                distinct.dedup();
                prop_assert_eq!(distinct.len(), additional_gids.len());
            }
            Err(RuntimeError::InvalidArgument(message)) => prop_assert!(!message.is_empty()),
            Err(other) => prop_assert!(false, "unexpected error {other:?}"),
        }
        let noisy_passwd = passwd.as_deref().map(noisy);
        let noisy_group = group.as_deref().map(noisy);
        let again = resolve_exec_user_from_text(
            noisy_passwd.as_deref(), noisy_group.as_deref(), spec.as_deref(), default,
        );
        prop_assert_eq!(format!("{again:?}"), format!("{resolved:?}"));
    }
}

proptest! {
    // Each case writes two files.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_files_and_their_text_resolve_alike(
        passwd in file(passwd_line().boxed()),
        group in file(group_line().boxed()),
        spec in spec(),
    ) {
        let root = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let etc = root.path().join("etc");
        std::fs::create_dir(&etc).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for (name, text) in [("passwd", &passwd), ("group", &group)] {
            if let Some(text) = text {
                std::fs::write(etc.join(name), text).map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
        }
        let default = (0, 0, vec![]);
        let from_files = resolve_exec_user(root.path(), spec.as_deref(), default.clone());
        let from_text =
            resolve_exec_user_from_text(passwd.as_deref(), group.as_deref(), spec.as_deref(), default);
        prop_assert_eq!(format!("{from_files:?}"), format!("{from_text:?}"));
    }
}
