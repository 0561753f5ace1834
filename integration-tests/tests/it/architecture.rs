//! The workspace's module graph has no import cycle: within each crate, no module reaches itself
//! through `crate::…` / `super::…` references (a module and its own descendants or ancestors do
//! not count: a parent declares its children). Cycles make modules impossible to read, test or
//! move on their own; this keeps them out as the proxy and the admin API grow.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A crate's library modules: module path (`a::b`, the root is "") → its source, test modules
/// left out.
fn modules(src: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                // Binaries are crates of their own.
                if path.file_name().is_some_and(|n| n != "bin") {
                    walk(&path, out);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(src, &mut files);
    let mut out = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap().with_extension("");
        let mut parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        match parts.last().map(String::as_str) {
            Some("main") if parts.len() == 1 => continue,
            Some("lib") if parts.len() == 1 => parts.clear(),
            Some("mod") => {
                parts.pop();
            }
            _ => {}
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let code = match text.find("#[cfg(test)]\nmod tests") {
            Some(i) => &text[..i],
            None => &text,
        };
        // Comments (doc links among them) are not imports.
        let code: String = code
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .map(|l| format!("{l}\n"))
            .collect();
        out.insert(parts.join("::"), code);
    }
    out
}

/// The paths a source refers to after `prefix` (`crate::` or `super::`), braces expanded one
/// level deep (`crate::{a, b::c}` gives `a` and `b::c`).
fn referenced(code: &str, prefix: &str) -> Vec<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        if let Some(list) = rest.strip_prefix('{') {
            let mut depth = 1;
            let end = list
                .char_indices()
                .find(|(_, c)| {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map_or(list.len(), |(i, _)| i);
            let mut depth = 0;
            let mut item = String::new();
            for c in list[..end].chars().chain(std::iter::once(',')) {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        let path: String = item.trim().chars().take_while(|c| ident(*c)).collect();
                        out.push(path.trim_end_matches(':').to_owned());
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
        } else {
            let path: String = rest.chars().take_while(|c| ident(*c)).collect();
            out.push(path.trim_end_matches(':').to_owned());
        }
    }
    out
}

/// The module a path names: its longest prefix that is a module.
fn resolve(path: &str, known: &BTreeMap<String, String>) -> Option<String> {
    let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find(|candidate| known.contains_key(candidate))
}

fn related(a: &str, b: &str) -> bool {
    let within = |outer: &str, inner: &str| {
        outer.is_empty() || inner == outer || inner.starts_with(&format!("{outer}::"))
    };
    within(a, b) || within(b, a)
}

/// Each module's references to the modules it is not an ancestor or descendant of.
fn graph(known: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, code) in known {
        let parent = module.rsplit_once("::").map_or("", |(p, _)| p);
        let targets = referenced(code, "crate::").into_iter().chain(
            referenced(code, "super::")
                .into_iter()
                .map(|p| format!("{parent}::{p}")),
        );
        for target in targets {
            if let Some(to) = resolve(&target, known)
                && !related(module, &to)
            {
                edges.entry(module.clone()).or_default().insert(to);
            }
        }
    }
    edges
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        if let Some(out) = s.edges.get(v) {
            for w in out {
                let w = w.as_str();
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let lw = s.low[w];
                    let lv = s.low[v];
                    s.low.insert(v, lv.min(lw));
                } else if s.on_stack.contains(w) {
                    let iw = s.index[w];
                    let lv = s.low[v];
                    s.low.insert(v, lv.min(iw));
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.found
}

#[test]
fn no_module_import_cycles_in_the_workspace() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut found = Vec::new();
    let mut modules_seen = 0;
    for krate in ["proto", "common", "worker", "master", "integration-tests"] {
        let known = modules(&root.join(krate).join("src"));
        modules_seen += known.len();
        for cycle in cycles(&graph(&known)) {
            found.push(format!("{krate}: {}", cycle.join(" <-> ")));
        }
    }
    assert!(modules_seen > 50, "read only {modules_seen} modules");
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

#[test]
fn the_cycle_check_finds_cycles() {
    let mut known = BTreeMap::new();
    known.insert(String::new(), "mod a; mod b; mod c;".to_owned());
    known.insert("a".to_owned(), "use crate::b::Thing;".to_owned());
    known.insert("b".to_owned(), "use crate::{c::{X, Y}, d};".to_owned());
    known.insert("c".to_owned(), "fn f() { crate::a::g() }".to_owned());
    known.insert("a::inner".to_owned(), "use super::super::b;".to_owned());
    assert_eq!(
        cycles(&graph(&known)),
        vec![vec!["a".to_owned(), "b".to_owned(), "c".to_owned()]]
    );
    known.insert("c".to_owned(), "fn f() {}".to_owned());
    assert!(cycles(&graph(&known)).is_empty());
    // A parent and its child are not a cycle.
    known.insert("a".to_owned(), "use crate::a::inner::X;".to_owned());
    known.insert("a::inner".to_owned(), "use super::Y;".to_owned());
    assert!(cycles(&graph(&known)).is_empty());
}
