//! The localized message catalog of the admin API (GPT-Load's `internal/i18n`).
//!
//! GPT-Load answers admin requests in one of three languages, chosen from the `Accept-Language`
//! header by [`Lang::from_accept_language`] (default: Chinese). Handlers turn a message ID such
//! as `validation.invalid_group_id` into text with [`t`], or with [`tf`] when the message has
//! Go-template placeholders such as `{{.count}}`.
//!
//! The texts are data, one file per language in `i18n/` (`zh-CN.json`, `en-US.json`,
//! `ja-JP.json`): a flat JSON object, message ID → text, keys sorted. The files are embedded with
//! `include_str!` and each is parsed once, on first use. The en-US and zh-CN texts are
//! GPT-Load's, verbatim; the ja-JP texts are GPT-Load's where upstream has them.
//! `i18n/README.md` lists the texts written for gpt-load.
//!
//! The tests keep the catalogs and the code in step: the three files hold the same IDs with the
//! same placeholders; every ID the code names in a string literal anywhere under `src/` (outside
//! `#[cfg(test)]` code), or builds from the setting definitions, is in every file; and every ID
//! in the files is one of those.
//!
//! Behaviour copied from GPT-Load:
//! * only the first comma-separated `Accept-Language` tag counts; `zh*`, `en*`, `ja*` pick a
//!   language, anything else (or nothing) gives zh-CN;
//! * an unknown message ID is returned as the message itself;
//! * a placeholder with no value renders as `<no value>`, like Go's `text/template`.

use std::collections::HashMap;
use std::sync::LazyLock;

/// A UI/API language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    /// Simplified Chinese (`zh-CN`), GPT-Load's default.
    ZhCn,
    /// English (`en-US`).
    EnUs,
    /// Japanese (`ja-JP`).
    JaJp,
}

impl Default for Lang {
    /// zh-CN, the language GPT-Load uses when the client does not ask for one it knows.
    fn default() -> Self {
        Lang::ZhCn
    }
}

impl Lang {
    /// Picks the language from an `Accept-Language` header, following GPT-Load's rule: only the
    /// first comma-separated tag counts, with any `;q=…` stripped; `zh*` → [`Lang::ZhCn`],
    /// `en*` → [`Lang::EnUs`], `ja*` → [`Lang::JaJp`] (case-insensitive), anything else or an
    /// empty header → [`Lang::ZhCn`].
    ///
    /// Quality values are ignored: `fr, en;q=0.9` is Chinese.
    pub fn from_accept_language(header: &str) -> Lang {
        let first = header.split(',').next().unwrap_or_default().trim();
        // Go strips from the first ';' only when it is not at index 0.
        let tag = match first.find(';') {
            Some(idx) if idx > 0 => &first[..idx],
            _ => first,
        };
        let tag = tag.trim().to_ascii_lowercase();
        if tag.starts_with("zh") {
            Lang::ZhCn
        } else if tag.starts_with("en") {
            Lang::EnUs
        } else if tag.starts_with("ja") {
            Lang::JaJp
        } else {
            Lang::ZhCn
        }
    }

    /// The BCP 47 code GPT-Load uses for this language: `"zh-CN"`, `"en-US"` or `"ja-JP"`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::ZhCn => "zh-CN",
            Lang::EnUs => "en-US",
            Lang::JaJp => "ja-JP",
        }
    }

    /// The parsed catalog of this language.
    fn catalog(self) -> &'static Catalog {
        match self {
            Lang::ZhCn => &ZH_CN,
            Lang::EnUs => &EN_US,
            Lang::JaJp => &JA_JP,
        }
    }

    /// The catalog file of this language, as embedded in the binary.
    fn source(self) -> &'static str {
        match self {
            Lang::ZhCn => include_str!("i18n/zh-CN.json"),
            Lang::EnUs => include_str!("i18n/en-US.json"),
            Lang::JaJp => include_str!("i18n/ja-JP.json"),
        }
    }
}

/// The raw (unrendered) text of `id` in `lang`, or `None` when the catalog has no such ID.
pub fn lookup(lang: Lang, id: &str) -> Option<&'static str> {
    lang.catalog().get(id).map(|text| &**text)
}

/// The message for `id` in `lang`; an unknown id returns the id itself (GPT-Load's behaviour).
///
/// Same as [`tf`] with no variables: a placeholder in the message renders as `<no value>`.
pub fn t(lang: Lang, id: &str) -> String {
    tf(lang, id, &[])
}

/// Same as [`t`], with Go-template-style `{{.name}}` placeholders substituted from `vars`.
///
/// Values are inserted verbatim and not scanned again. A placeholder whose name is not in `vars`
/// renders as `<no value>` (Go's `text/template` output for a missing map key); text between
/// braces that is not a `{{.name}}` placeholder is kept as it is.
pub fn tf(lang: Lang, id: &str, vars: &[(&str, &str)]) -> String {
    match lookup(lang, id) {
        Some(template) => render(template, vars),
        None => id.to_owned(),
    }
}

/// What Go's `text/template` prints for a missing map key.
const NO_VALUE: &str = "<no value>";

/// Substitutes `{{.name}}` (spaces allowed inside the braces) with the value of `name` in `vars`.
fn render(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after_open = &rest[start + 2..];
        let Some(len) = after_open.find("}}") else {
            break;
        };
        let name = after_open[..len]
            .trim()
            .strip_prefix('.')
            .filter(|name| is_identifier(name));
        match name {
            Some(name) => {
                out.push_str(&rest[..start]);
                let value = vars
                    .iter()
                    .find(|(key, _)| *key == name)
                    .map_or(NO_VALUE, |(_, value)| *value);
                out.push_str(value);
                rest = &after_open[len + 2..];
            }
            None => {
                out.push_str(&rest[..start + 2]);
                rest = after_open;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether `name` is a template field name: non-empty, letters, digits and `_` only.
fn is_identifier(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// One language's messages: message ID → Go-template text.
type Catalog = HashMap<Box<str>, Box<str>>;

static ZH_CN: LazyLock<Catalog> = LazyLock::new(|| parse(Lang::ZhCn));
static EN_US: LazyLock<Catalog> = LazyLock::new(|| parse(Lang::EnUs));
static JA_JP: LazyLock<Catalog> = LazyLock::new(|| parse(Lang::JaJp));

/// Parses the embedded catalog of `lang`.
///
/// A malformed file is a defect the tests catch (`catalogs_parse_and_are_canonical`). Should one
/// ship anyway, it is logged once and that language's catalog is empty, so its messages fall
/// back to their IDs instead of failing requests.
fn parse(lang: Lang) -> Catalog {
    serde_json::from_str(lang.source()).unwrap_or_else(|error| {
        tracing::error!(
            lang = lang.code(),
            %error,
            "malformed message catalog; its messages fall back to their ids"
        );
        Catalog::new()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    use gpt_load_common::model::SETTING_DEFS;

    const ALL: [Lang; 3] = [Lang::ZhCn, Lang::EnUs, Lang::JaJp];

    #[test]
    fn accept_language_parsing() {
        assert_eq!(Lang::from_accept_language(""), Lang::ZhCn);
        assert_eq!(Lang::from_accept_language("en-US,en;q=0.9"), Lang::EnUs);
        assert_eq!(Lang::from_accept_language("ja"), Lang::JaJp);
        assert_eq!(Lang::from_accept_language("fr-FR"), Lang::ZhCn);
        assert_eq!(Lang::from_accept_language("ZH-tw"), Lang::ZhCn);
        // Only the first tag counts, whatever the q-values say.
        assert_eq!(Lang::from_accept_language("fr, en;q=0.9"), Lang::ZhCn);
        assert_eq!(Lang::from_accept_language("ja-JP;q=0.5,en;q=1"), Lang::JaJp);
        assert_eq!(Lang::from_accept_language("en;q=0.8"), Lang::EnUs);
        assert_eq!(Lang::from_accept_language("  EN-gb , zh"), Lang::EnUs);
        assert_eq!(Lang::from_accept_language("zh-Hans-CN"), Lang::ZhCn);
        assert_eq!(Lang::from_accept_language("*"), Lang::ZhCn);
        assert_eq!(Lang::from_accept_language(",en"), Lang::ZhCn);
        assert_eq!(Lang::from_accept_language(";q=1,en"), Lang::ZhCn);
        assert_eq!(Lang::default(), Lang::ZhCn);
    }

    #[test]
    fn language_codes() {
        assert_eq!(Lang::ZhCn.code(), "zh-CN");
        assert_eq!(Lang::EnUs.code(), "en-US");
        assert_eq!(Lang::JaJp.code(), "ja-JP");
        for lang in ALL {
            assert_eq!(Lang::from_accept_language(lang.code()), lang);
        }
    }

    #[test]
    fn plain_messages() {
        assert_eq!(t(Lang::EnUs, "common.success"), "Success");
        assert_eq!(t(Lang::ZhCn, "common.success"), "操作成功");
        assert_eq!(t(Lang::JaJp, "common.success"), "成功");
        assert_eq!(
            t(Lang::EnUs, "validation.invalid_group_id"),
            "Invalid group ID format"
        );
        assert_eq!(t(Lang::ZhCn, "group.not_found"), "分组不存在");
        assert_eq!(t(Lang::EnUs, "config.category.key"), "Key Configuration");
        assert_eq!(t(Lang::JaJp, "config.category.basic"), "基本設定");
        assert_eq!(t(Lang::EnUs, "config.category.basic"), "Basic");
        assert_eq!(t(Lang::ZhCn, "config.category.request"), "请求设置");
        assert_eq!(
            t(Lang::EnUs, "config.failover_status_codes"),
            "Failover Status Codes"
        );
        assert!(t(Lang::EnUs, "config.failover_status_codes_desc").contains("400-403,405-999"));
        assert_eq!(lookup(Lang::EnUs, "no.such.id"), None);
        assert_eq!(
            lookup(Lang::EnUs, "success.keys_restored"),
            Some("{{.count}} keys restored")
        );
    }

    #[test]
    fn template_substitution() {
        assert_eq!(
            tf(Lang::EnUs, "success.all_keys_cleared", &[("count", "5")]),
            "5 keys cleared"
        );
        assert_eq!(
            tf(Lang::ZhCn, "success.keys_restored", &[("count", "3")]),
            "3个密钥已恢复"
        );
        assert_eq!(
            tf(
                Lang::EnUs,
                "security.password_too_short",
                &[("keyType", "AUTH_KEY"), ("length", "8"), ("unused", "x")]
            ),
            "AUTH_KEY is too short (8 characters), recommend at least 16 characters"
        );
        assert_eq!(
            tf(
                Lang::EnUs,
                "validation.invalid_model_redirect",
                &[("error", "model name cannot be empty")]
            ),
            "Invalid model redirect rules: model name cannot be empty"
        );
        assert_eq!(
            tf(Lang::JaJp, "auth.too_many_attempts", &[("seconds", "60")]),
            "ログインの失敗回数が多すぎます。60秒後に再試行してください"
        );
        // A missing variable renders like Go's text/template does.
        assert_eq!(
            t(Lang::EnUs, "success.keys_restored"),
            "<no value> keys restored"
        );
        // Values are not expanded again.
        assert_eq!(
            tf(
                Lang::EnUs,
                "validation.duplicate_header",
                &[("key", "{{.key}}")]
            ),
            "Duplicate header: {{.key}}"
        );
    }

    #[test]
    fn render_edge_cases() {
        assert_eq!(render("a {{ .x }} b", &[("x", "1")]), "a 1 b");
        assert_eq!(render("{{.x}}{{.y}}", &[("x", "1"), ("y", "2")]), "12");
        assert_eq!(render("no braces", &[]), "no braces");
        assert_eq!(render("open {{.x", &[("x", "1")]), "open {{.x");
        assert_eq!(render("{{x}} {{.x}}", &[("x", "1")]), "{{x}} 1");
        assert_eq!(render("{{{.x}}}", &[("x", "1")]), "{{{.x}}}");
        assert_eq!(render("{{.}} {{.x}}", &[("x", "1")]), "{{.}} 1");
        assert_eq!(render("日本{{.x}}語", &[("x", "1")]), "日本1語");
    }

    #[test]
    fn unknown_id_falls_back_to_the_id() {
        for lang in ALL {
            assert_eq!(t(lang, "no.such.message"), "no.such.message");
            assert_eq!(tf(lang, "{{.x}}", &[("x", "1")]), "{{.x}}");
            assert_eq!(t(lang, ""), "");
        }
    }

    fn ids(lang: Lang) -> BTreeSet<&'static str> {
        lang.catalog().keys().map(|id| &**id).collect()
    }

    #[test]
    fn catalogs_parse_and_are_canonical() {
        for lang in ALL {
            let file = format!("i18n/{}.json", lang.code());
            let parsed: BTreeMap<String, String> = serde_json::from_str(lang.source())
                .unwrap_or_else(|e| panic!("{file} is not a flat JSON object of strings: {e}"));
            assert!(!parsed.is_empty(), "{file} is empty");
            assert_eq!(
                lang.catalog().len(),
                parsed.len(),
                "{file} parsed differently"
            );
            // Sorted, pretty-printed, non-ASCII unescaped, no duplicate keys: one way to write it.
            let canonical = serde_json::to_string_pretty(&parsed).unwrap() + "\n";
            let same_lines = lang
                .source()
                .lines()
                .zip(canonical.lines())
                .take_while(|(have, want)| have == want)
                .count();
            assert!(
                lang.source() == canonical,
                "{file} is not in canonical form (keys sorted and unique, two-space indent, \
                 UTF-8 unescaped, final newline); first difference at line {}",
                same_lines + 1
            );
        }
    }

    #[test]
    fn every_language_has_the_same_ids() {
        let en = ids(Lang::EnUs);
        for lang in ALL {
            let set = ids(lang);
            let missing: Vec<_> = en.difference(&set).collect();
            assert!(missing.is_empty(), "{} lacks {missing:?}", lang.code());
            let extra: Vec<_> = set.difference(&en).collect();
            assert!(extra.is_empty(), "{} has extra {extra:?}", lang.code());
        }
    }

    #[test]
    fn ids_have_the_shape_the_source_scan_sees() {
        for lang in ALL {
            for id in ids(lang) {
                assert!(
                    is_message_id(id),
                    "{} has {id:?}; ids are dot-separated lowercase words \
                     (`area.name`) so the tests can find them in the code",
                    lang.code()
                );
            }
        }
    }

    fn placeholders(text: &str) -> Vec<String> {
        let mut names: Vec<String> = text
            .split("{{")
            .skip(1)
            .filter_map(|part| part.split_once("}}"))
            .map(|(inside, _)| inside.trim().to_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn translations_are_complete_and_consistent() {
        for (id, en_text) in EN_US.iter() {
            assert!(!en_text.trim().is_empty(), "empty en-US text for {id}");
            for lang in [Lang::ZhCn, Lang::JaJp] {
                let text = lookup(lang, id).unwrap_or_default();
                assert!(
                    !text.trim().is_empty(),
                    "empty {} text for {id}",
                    lang.code()
                );
                assert_eq!(
                    placeholders(text),
                    placeholders(en_text),
                    "placeholders of {id} differ in {}",
                    lang.code()
                );
            }
        }
    }

    #[test]
    fn readme_names_only_catalog_ids() {
        let readme = include_str!("i18n/README.md");
        let named: Vec<&str> = readme
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|span| is_message_id(span))
            .collect();
        assert!(!named.is_empty(), "i18n/README.md names no ids");
        for id in named {
            for lang in ALL {
                assert!(
                    lookup(lang, id).is_some(),
                    "i18n/README.md names {id}, which i18n/{}.json lacks",
                    lang.code()
                );
            }
        }
    }

    // The catalogs against the code. "Used" means named in a string literal of non-test code in
    // any `.rs` file under `src/` (read at test time, so moved and new files count), or built at
    // run time by `dynamic_ids`.

    /// Literals shaped like a message id with a catalog prefix that are not message ids.
    const NOT_MESSAGE_IDS: &[&str] = &[];

    /// Dot-separated words of `[a-z0-9_]`, at least two: the shape of every message id.
    fn is_message_id(s: &str) -> bool {
        s.contains('.')
            && s.split('.')
                .all(|word| !word.is_empty() && word.bytes().all(is_id_byte))
    }

    fn is_id_byte(b: u8) -> bool {
        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'
    }

    /// The first word of every catalog id: `validation`, `success`, `config`, …
    fn prefixes() -> BTreeSet<&'static str> {
        ids(Lang::EnUs)
            .into_iter()
            .filter_map(|id| id.split('.').next())
            .collect()
    }

    /// The ids the code builds from data instead of naming them: each setting's name and
    /// description (`service::settings::name_id`, `<name>_desc`) and each setting category.
    fn dynamic_ids() -> BTreeSet<String> {
        let mut ids = BTreeSet::new();
        for def in SETTING_DEFS {
            let name = crate::service::settings::name_id(def.key);
            ids.insert(format!("{name}_desc"));
            ids.insert(name);
            ids.insert(format!("config.category.{}", def.category));
        }
        ids
    }

    /// Every `.rs` file under `src/` (path relative to `src/`, text), in path order.
    fn source_files() -> Vec<(PathBuf, String)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut dirs = vec![root.clone()];
        let mut files = Vec::new();
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|ext| ext == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    files.push((path.strip_prefix(&root).unwrap().to_path_buf(), text));
                }
            }
        }
        files.sort();
        assert!(
            files.iter().any(|(path, _)| path == Path::new("i18n.rs")),
            "the scan of {} missed i18n.rs",
            root.display()
        );
        files
    }

    /// The id-shaped string literals of non-test code, each with the first file naming it.
    fn id_literals() -> BTreeMap<String, PathBuf> {
        let mut found = BTreeMap::new();
        for (path, text) in source_files() {
            for literal in code_literals(&text) {
                if is_message_id(&literal) {
                    found.entry(literal).or_insert_with(|| path.clone());
                }
            }
        }
        found
    }

    #[test]
    fn every_id_the_code_uses_is_in_every_catalog() {
        let prefixes = prefixes();
        let mut problems = Vec::new();
        for (literal, path) in id_literals() {
            let prefix = literal.split('.').next().unwrap_or_default();
            if !prefixes.contains(prefix) || NOT_MESSAGE_IDS.contains(&literal.as_str()) {
                continue;
            }
            for lang in ALL {
                if lookup(lang, &literal).is_none() {
                    problems.push(format!(
                        "src/{} names {literal:?}, which i18n/{}.json lacks",
                        path.display(),
                        lang.code()
                    ));
                }
            }
        }
        for id in dynamic_ids() {
            for lang in ALL {
                if lookup(lang, &id).is_none() {
                    problems.push(format!(
                        "the settings use {id:?}, which i18n/{}.json lacks",
                        lang.code()
                    ));
                }
            }
        }
        assert!(
            problems.is_empty(),
            "{}\n(a literal that only looks like a message id belongs in NOT_MESSAGE_IDS)",
            problems.join("\n")
        );
    }

    #[test]
    fn every_catalog_id_is_used() {
        let mut used: BTreeSet<String> = id_literals().into_keys().collect();
        used.extend(dynamic_ids());
        for lang in ALL {
            let unused: Vec<_> = ids(lang)
                .into_iter()
                .filter(|id| !used.contains(*id))
                .collect();
            assert!(
                unused.is_empty(),
                "i18n/{}.json has ids no code under src/ uses; remove them from every catalog: \
                 {unused:?}",
                lang.code()
            );
        }
    }

    /// Format strings that build ids (`"config.category.{}"`) must be covered by `dynamic_ids`,
    /// or the two tests above would not see the ids they build.
    #[test]
    fn every_id_template_is_covered_by_dynamic_ids() {
        let prefixes = prefixes();
        let dynamic = dynamic_ids();
        for (path, text) in source_files() {
            for literal in code_literals(&text) {
                let Some((prefix, _)) = literal.split_once('.') else {
                    continue;
                };
                let template = literal.contains('{')
                    && literal
                        .bytes()
                        .all(|b| is_id_byte(b) || b"{}.".contains(&b));
                if template && prefixes.contains(prefix) {
                    assert!(
                        dynamic.iter().any(|id| template_matches(&literal, id)),
                        "src/{} builds ids with {literal:?}, which `dynamic_ids` in src/i18n.rs \
                         does not cover; add them there",
                        path.display()
                    );
                }
            }
        }
    }

    /// Whether `id` is an instance of `template`, each `{…}` standing for one or more id bytes.
    fn template_matches(template: &str, id: &str) -> bool {
        let Some(open) = template.find('{') else {
            return template == id;
        };
        let Some(rest) = id.strip_prefix(&template[..open]) else {
            return false;
        };
        let after = &template[open..];
        let after = &after[after.find('}').map_or(after.len(), |close| close + 1)..];
        (1..=rest.len())
            .take_while(|&n| rest.as_bytes()[n - 1] == b'.' || is_id_byte(rest.as_bytes()[n - 1]))
            .any(|n| template_matches(after, &rest[n..]))
    }

    #[test]
    fn template_matching() {
        assert!(template_matches("config.{short}", "config.app_url"));
        assert!(template_matches(
            "config.category.{}",
            "config.category.key"
        ));
        assert!(template_matches("a.{x}_desc", "a.b_c_desc"));
        assert!(!template_matches("a.{x}_desc", "a.b"));
        assert!(!template_matches("a.{x}", "a."));
        assert!(!template_matches("b.{x}", "a.b"));
    }

    /// A Rust token, as far as the id scan needs: string literal contents (escapes as written)
    /// or any other piece of code (a word or one punctuation character).
    #[derive(Debug, PartialEq)]
    enum Token {
        Str(String),
        Code(String),
    }

    /// Splits Rust source into tokens, dropping whitespace, comments, char literals and
    /// lifetimes (a `'{'` must not count as a brace, a `'"'` must not open a string).
    fn lex(src: &str) -> Vec<Token> {
        let s: Vec<char> = src.chars().collect();
        let at = |i: usize| s.get(i).copied();
        let mut tokens = Vec::new();
        let mut i = 0;
        while let Some(c) = at(i) {
            let next = at(i + 1);
            if c.is_whitespace() {
                i += 1;
            } else if c == '/' && next == Some('/') {
                while at(i).is_some_and(|c| c != '\n') {
                    i += 1;
                }
            } else if c == '/' && next == Some('*') {
                let mut depth = 0usize;
                while let Some(c) = at(i) {
                    if c == '/' && at(i + 1) == Some('*') {
                        depth += 1;
                        i += 2;
                    } else if c == '*' && at(i + 1) == Some('/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            } else if c == '"' {
                i = quoted(&s, i + 1, &mut tokens);
            } else if c == '\'' {
                if next == Some('\\') {
                    // An escaped char literal: skip the escaped char, then up to the quote.
                    i += 3;
                    while at(i).is_some_and(|c| c != '\'') {
                        i += 1;
                    }
                    i += 1;
                } else if at(i + 2) == Some('\'') {
                    i += 3;
                } else {
                    // A lifetime or label; its name is lexed as a word next.
                    i += 1;
                }
            } else if c.is_alphanumeric() || c == '_' {
                let start = i;
                while at(i).is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    i += 1;
                }
                let word: String = s[start..i].iter().collect();
                let hashes = s[i..].iter().take_while(|&&c| c == '#').count();
                if matches!(word.as_str(), "r" | "br" | "cr") && at(i + hashes) == Some('"') {
                    let body = i + hashes + 1;
                    let mut end = body;
                    while end < s.len()
                        && !(s[end] == '"'
                            && s[end + 1..].iter().take_while(|&&c| c == '#').count() >= hashes)
                    {
                        end += 1;
                    }
                    tokens.push(Token::Str(s[body..end.min(s.len())].iter().collect()));
                    i = end + 1 + hashes;
                } else if matches!(word.as_str(), "b" | "c") && at(i) == Some('"') {
                    i = quoted(&s, i + 1, &mut tokens);
                } else {
                    tokens.push(Token::Code(word));
                }
            } else {
                tokens.push(Token::Code(c.to_string()));
                i += 1;
            }
        }
        tokens
    }

    /// Pushes the string literal whose contents start at `start`; returns the index after it.
    fn quoted(s: &[char], start: usize, tokens: &mut Vec<Token>) -> usize {
        let mut i = start;
        while i < s.len() && s[i] != '"' {
            i += if s[i] == '\\' { 2 } else { 1 };
        }
        tokens.push(Token::Str(s[start..i.min(s.len())].iter().collect()));
        i + 1
    }

    /// The string literals of `src` outside items marked `#[cfg(test)]` (and outside a whole
    /// file marked `#![cfg(test)]`).
    fn code_literals(src: &str) -> Vec<String> {
        let tokens = lex(src);
        let code = |i: usize| match tokens.get(i) {
            Some(Token::Code(code)) => Some(code.as_str()),
            _ => None,
        };
        let follows = |i: usize, pattern: &[&str]| {
            pattern
                .iter()
                .enumerate()
                .all(|(k, want)| code(i + k) == Some(want))
        };
        let mut literals = Vec::new();
        let mut i = 0;
        while i < tokens.len() {
            if follows(i, &["#", "!", "[", "cfg", "(", "test", ")", "]"]) {
                break;
            }
            if follows(i, &["#", "[", "cfg", "(", "test", ")", "]"]) {
                // Skip the item: up to a `;` or through a `{…}` block, outside `(…)`/`[…]`.
                i += 7;
                let mut nesting = 0usize;
                while i < tokens.len() {
                    match code(i) {
                        Some("(" | "[") => nesting += 1,
                        Some(")" | "]") => nesting = nesting.saturating_sub(1),
                        Some(";") if nesting == 0 => break,
                        Some("{") if nesting == 0 => {
                            let mut braces = 0usize;
                            while i < tokens.len() {
                                match code(i) {
                                    Some("{") => braces += 1,
                                    Some("}") => braces -= 1,
                                    _ => {}
                                }
                                if braces == 0 {
                                    break;
                                }
                                i += 1;
                            }
                            break;
                        }
                        _ => {}
                    }
                    i += 1;
                }
            } else if let Some(Token::Str(text)) = tokens.get(i) {
                literals.push(text.clone());
            }
            i += 1;
        }
        literals
    }

    #[test]
    fn the_scan_sees_only_string_literals_of_non_test_code() {
        let src = r###"
            // "comment.line"
            /* "comment.block" /* "comment.nested" */ "comment.after_nested" */
            fn f<'a>(x: &'a str) -> &'static str {
                let _ = ['"', '{', '\'', '\u{7b}', b'"'];
                'outer: loop { break 'outer; }
                "code.plain"
            }
            const R: &str = r#"code.raw "quoted""#;
            const B: &[u8] = b"code.bytes \" escaped";
            #[cfg(test)]
            const T: [&str; 1] = ["test.const"];
            #[cfg(test)]
            mod tests {
                fn g() { let _ = ("test.in_module", '}'); }
            }
            const A: &str = "code.after {x}";
        "###;
        assert_eq!(
            code_literals(src),
            [
                "code.plain",
                "code.raw \"quoted\"",
                "code.bytes \\\" escaped",
                "code.after {x}"
            ]
        );
        assert!(code_literals("#![cfg(test)]\nconst X: &str = \"test.file\";").is_empty());
    }
}
