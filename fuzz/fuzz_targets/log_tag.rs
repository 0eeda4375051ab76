//! `render_log_tag`: any template against any data.
//!
//! Input: the template, then optionally the data's fields separated by NUL
//! bytes (`template\0id\0name\0image_name\0image_id\0pod`); missing fields
//! take realistic values. Properties: no panic; a template without `{{` is
//! copied as is; errors quote the template (and an unknown field appears
//! in it); the output is bounded by the template and the data; a comment
//! added before or after a rendered template changes nothing; `truncate`,
//! its piped form and `slice` agree with the byte rules they document.

#![no_main]

use conmon_driver::{render_log_tag, LogTagData, LogTagError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let text = String::from_utf8_lossy(input);
    let mut parts = text.split('\0');
    let template = parts.next().unwrap_or_default();
    let mut field = |default: &str| parts.next().unwrap_or(default).to_owned();
    let data = LogTagData {
        id: field("4f1c7a9e2b3d5f60718293a4b5c6d7e8f90112233445566778899aabbccddeeff"),
        name: field("web"),
        image_name: field("docker.io/library/nginx:latest"),
        image_id: field("605c77e624ddb75e6110f997c58876baa13f8754486b461117934b24a9dc3a85"),
        pod: field(""),
    };

    let rendered = render_log_tag(template, &data);
    assert_eq!(rendered, render_log_tag(template, &data), "deterministic");
    match &rendered {
        Ok(out) => {
            if !template.contains("{{") {
                assert_eq!(out, template, "plain text is copied");
            }
            let longest = [
                &data.id,
                &data.name,
                &data.image_name,
                &data.image_id,
                &data.pod,
            ]
            .iter()
            .map(|f| f.len())
            .max()
            .unwrap_or(0)
            .max(20);
            let actions = template.matches("{{").count();
            assert!(
                out.len() <= template.len() + actions * longest,
                "output {} bytes for a template of {} bytes",
                out.len(),
                template.len()
            );
        }
        Err(LogTagError::UnknownField { template: t, field }) => {
            assert_eq!(t, template);
            assert!(field.starts_with('.') && template.contains(field.as_str()));
        }
        Err(LogTagError::Invalid {
            template: t,
            problem,
        }) => {
            assert_eq!(t, template);
            assert!(!problem.is_empty());
        }
    }

    // A comment before the template, or after one that rendered (and does
    // not end inside a would-be `{{`), renders nothing.
    let before = render_log_tag(&format!("{{{{/* c */}}}}{template}"), &data);
    assert_eq!(
        before.as_ref().ok(),
        rendered.as_ref().ok(),
        "comment before"
    );
    assert_eq!(before.is_ok(), rendered.is_ok());
    if rendered.is_ok() && !template.ends_with('{') {
        let after = render_log_tag(&format!("{template}{{{{/* c */}}}}"), &data);
        assert_eq!(after.as_ref().ok(), rendered.as_ref().ok(), "comment after");
    }

    // A field between literal text is the field's value between that text.
    let literal: String = template
        .chars()
        .filter(|c| !matches!(c, '{' | '}'))
        .collect();
    let around = render_log_tag(&format!("{literal}{{{{ .Name }}}}{literal}"), &data);
    assert_eq!(around, Ok(format!("{literal}{}{literal}", data.name)));

    // truncate and slice on the name, with numbers taken from the input.
    let n = input.len() % 70;
    let m = input.first().map_or(0, |b| usize::from(*b) % 70);
    let name = data.name.as_str();
    let mut end = n.min(name.len());
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let prefix = &name[..end];
    let called = render_log_tag(&format!("{{{{truncate .Name {n}}}}}"), &data);
    assert_eq!(called.as_deref(), Ok(prefix));
    let piped = render_log_tag(&format!("{{{{ .Name | truncate {n} }}}}"), &data);
    assert_eq!(piped.as_deref(), Ok(prefix));
    let sliced = render_log_tag(&format!("{{{{slice .Name {m} {n}}}}}"), &data);
    match name.get(m..n) {
        Some(part) => assert_eq!(sliced.as_deref(), Ok(part)),
        None => assert!(matches!(sliced, Err(LogTagError::Invalid { .. }))),
    }
});
