//! The `deploy/` folder, checked as far as a machine without a container engine can:
//!
//! - every YAML file (compose, Kubernetes, OpenTelemetry collector, Prometheus, Grafana
//!   provisioning) parses, and the files agree with each other (service names, ports, mounted
//!   paths, env variables the binary really reads, probes on `/health`);
//! - the Dockerfile and compose health checks work against the real `/health`;
//! - every metric a Grafana dashboard queries is documented in `deploy/METRICS.md` and really
//!   exported: a live `GET /metrics` scrape of the binary after proxied traffic (a single node,
//!   then a master and a worker on Redis);
//! - every metric the binary exports is documented there, with its type and its labels, and no
//!   key or raw path ever shows up in a scrape.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use gpt_load_integration_tests::harness::{
    ADMIN_KEY, RedisServer, Server, eventually, free_port, run_cli,
};
use gpt_load_integration_tests::mock_upstream::{Behavior, MockUpstream};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::proxy::{PROXY_KEY, Setup};

// ------------------------------------------------------------------------------------------
// Files

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn deploy_dir() -> PathBuf {
    repo_root().join("deploy")
}

/// Every file under `dir`, recursively, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn has_ext(p: &Path, exts: &[&str]) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| exts.contains(&e))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every document of a YAML file as JSON (empty documents skipped).
fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = read(path);
    let mut docs = Vec::new();
    for de in serde_yaml::Deserializer::from_str(&text) {
        let v = serde_yaml::Value::deserialize(de)
            .unwrap_or_else(|e| panic!("{}: invalid YAML: {e}", path.display()));
        if v.is_null() {
            continue;
        }
        docs.push(serde_json::to_value(&v).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
    }
    docs
}

/// A YAML file holding exactly one document.
fn yaml(path: &Path) -> Value {
    let mut docs = yaml_docs(path);
    assert_eq!(docs.len(), 1, "{}: one YAML document", path.display());
    docs.remove(0)
}

/// Whether a list of strings holds `item`.
fn has(list: &[String], item: &str) -> bool {
    list.iter().any(|s| s == item)
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The strings of a JSON array (anything else: none).
fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// A compose `environment` (map or `KEY=value` list) or a plain string map.
fn str_map(v: &Value) -> BTreeMap<String, String> {
    match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect(),
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (kv.to_owned(), String::new()),
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// The environment variables `gpt-load --help` documents (every one the binary reads).
async fn known_env_vars() -> BTreeSet<String> {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = run_cli(dir.path(), &[], &["--help"]).await;
    assert!(ok, "gpt-load --help: {err}");
    let vars: BTreeSet<String> = out
        .split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .filter(|w| w.len() > 1 && w.starts_with(|c: char| c.is_ascii_uppercase()))
        .map(str::to_owned)
        .collect();
    assert!(
        vars.contains("AUTH_KEY") && vars.contains("METRICS_ENABLED"),
        "--help lists the variables: {out}"
    );
    vars
}

/// Variables handed to a gpt-load process must be ones it reads: a typo would be silently ignored.
fn check_env_names<'a>(
    names: impl IntoIterator<Item = &'a String>,
    known: &BTreeSet<String>,
    what: &str,
) {
    for n in names {
        assert!(
            known.contains(n) || n.starts_with("OTEL_") || n == "POD_NAME",
            "{what}: {n} is not a variable gpt-load reads (see `gpt-load --help`)"
        );
    }
}

// ------------------------------------------------------------------------------------------
// The static files

#[tokio::test(flavor = "multi_thread")]
async fn deploy_files_parse_and_agree() {
    let root = repo_root();
    let deploy = deploy_dir();
    let known_env = known_env_vars().await;

    // Every YAML file under deploy/ parses.
    let yamls: Vec<PathBuf> = files_under(&deploy)
        .into_iter()
        .filter(|p| has_ext(p, &["yml", "yaml"]))
        .collect();
    assert!(yamls.len() >= 15, "YAML files under deploy/: {yamls:?}");
    for p in &yamls {
        assert!(!yaml_docs(p).is_empty(), "{}: no document", p.display());
    }

    // Dockerfile: the stages and what the compose files and manifests rely on.
    let dockerfile = read(&deploy.join("Dockerfile"));
    for needle in [
        "FROM node:",
        "FROM rust:",
        "FROM debian:",
        "npm --prefix ui install",
        "npm --prefix ui run build",
        "cargo build --release --locked --bin gpt-load",
        "COPY --from=ui /src/ui/dist ui/dist",
        "EXPOSE 3001 3002",
        "VOLUME [\"/app/data\"]",
        "WORKDIR /app",
        "USER ",
        "HEALTHCHECK",
        "ENTRYPOINT [\"/usr/local/bin/gpt-load\"]",
    ] {
        assert!(dockerfile.contains(needle), "Dockerfile: {needle}");
    }
    assert!(
        read(&root.join("master/Cargo.toml")).contains("name = \"gpt-load\""),
        "the Dockerfile builds the gpt-load bin of the master crate"
    );
    // Every COPY from the build context names something that exists in the repository.
    for line in dockerfile.lines().map(str::trim) {
        let Some(args) = line.strip_prefix("COPY ") else {
            continue;
        };
        if args.contains("--from=") {
            continue;
        }
        let words: Vec<&str> = args
            .split_whitespace()
            .filter(|w| !w.starts_with("--"))
            .collect();
        for src in &words[..words.len() - 1] {
            assert!(
                root.join(src).exists(),
                "Dockerfile COPY {src}: not in the repository"
            );
        }
    }
    let ignore = read(&deploy.join("dockerignore.example"));
    for needle in ["target/", "node_modules/", "ui/dist/", ".git"] {
        assert!(ignore.contains(needle), "dockerignore.example: {needle}");
    }

    // Compose files.
    let compose = deploy.join("compose");
    let env_example = read(&compose.join(".env.example"));
    let env_example: BTreeSet<String> = env_example
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_owned()))
        .collect();
    for k in ["AUTH_KEY", "ENCRYPTION_KEY"] {
        assert!(env_example.contains(k), ".env.example: {k}");
    }
    let compose_only = set(&["POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD"]);
    check_env_names(
        env_example.difference(&compose_only),
        &known_env,
        ".env.example",
    );

    for file in ["single-node.yml", "cluster.yml"] {
        let path = compose.join(file);
        let text = read(&path);
        // Every ${VAR} either has a default or is defined in .env.example.
        for part in text.split("${").skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let rest = &part[name.len()..];
            assert!(
                rest.starts_with(":-") || rest.starts_with('-') || env_example.contains(&name),
                "{file}: ${{{name}}} has no default and is not in .env.example"
            );
        }
        let doc = yaml(&path);
        let services = doc["services"].as_object().expect("services");
        let declared_volumes = keys(&doc["volumes"]);
        for (name, s) in services {
            for v in strs(&s["volumes"]) {
                let host = v.split(':').next().unwrap_or_default();
                if host.starts_with('.') {
                    assert!(
                        compose.join(host).exists(),
                        "{file} {name}: mounted {host} does not exist"
                    );
                } else if !host.starts_with('/') {
                    assert!(
                        declared_volumes.contains(host),
                        "{file} {name}: volume {host} is not declared"
                    );
                }
            }
            if s.get("build").is_some() {
                let context = compose.join(s["build"]["context"].as_str().unwrap());
                assert_eq!(
                    context.canonicalize().unwrap(),
                    root.canonicalize().unwrap(),
                    "{file} {name}: builds from the repository root"
                );
                assert_eq!(
                    s["build"]["dockerfile"], "deploy/Dockerfile",
                    "{file} {name}"
                );
            }
        }
    }

    let single = yaml(&compose.join("single-node.yml"));
    assert_eq!(keys(&single["services"]), set(&["gpt-load"]));
    let s = &single["services"]["gpt-load"];
    assert_eq!(s["env_file"], ".env", "AUTH_KEY / ENCRYPTION_KEY from .env");
    assert!(has(&strs(&s["ports"]), "3001:3001"));
    assert!(
        strs(&s["volumes"])
            .iter()
            .any(|v| v.starts_with("gpt-load-data:/app/data")),
        "SQLite in a named volume"
    );
    let e = str_map(&s["environment"]);
    assert!(
        e.get("DATABASE_DSN")
            .is_some_and(|d| d.starts_with("/app/data/"))
    );
    check_env_names(e.keys(), &known_env, "single-node.yml");
    assert!(
        strs(&s["healthcheck"]["test"])
            .join(" ")
            .contains("GET /health")
    );

    let cluster = yaml(&compose.join("cluster.yml"));
    let svc = &cluster["services"];
    assert_eq!(
        keys(svc),
        set(&[
            "postgres",
            "redis",
            "master",
            "worker-1",
            "worker-2",
            "otel-collector",
            "prometheus",
            "grafana"
        ])
    );
    assert!(
        svc["postgres"]["image"]
            .as_str()
            .unwrap()
            .starts_with("postgres:16")
    );
    assert!(
        svc["redis"]["image"]
            .as_str()
            .unwrap()
            .starts_with("redis:7")
    );
    assert!(
        svc["otel-collector"]["image"]
            .as_str()
            .unwrap()
            .starts_with("otel/opentelemetry-collector-contrib")
    );
    let master = str_map(&svc["master"]["environment"]);
    let get = |m: &BTreeMap<String, String>, k: &str| m.get(k).cloned().unwrap_or_default();
    assert!(get(&master, "DATABASE_DSN").starts_with("postgres://"));
    assert!(get(&master, "DATABASE_DSN").contains("@postgres:5432/"));
    assert_eq!(get(&master, "REDIS_DSN"), "redis://redis:6379/0");
    assert_eq!(get(&master, "GRPC_PORT"), "3002");
    assert_eq!(get(&master, "METRICS_ENABLED"), "true");
    assert_eq!(
        get(&master, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        "http://otel-collector:4317"
    );
    assert_eq!(get(&master, "OTEL_SERVICE_NAME"), "gpt-load-master");
    assert!(!master.contains_key("IS_SLAVE"));
    check_env_names(master.keys(), &known_env, "cluster.yml master");
    assert!(has(&strs(&svc["master"]["ports"]), "3001:3001"));
    for w in ["worker-1", "worker-2"] {
        let e = str_map(&svc[w]["environment"]);
        assert_eq!(get(&e, "IS_SLAVE"), "true", "{w}");
        assert_eq!(
            get(&e, "MASTER_GRPC_URL"),
            format!("http://master:{}", get(&master, "GRPC_PORT")),
            "{w}"
        );
        assert_eq!(get(&e, "REDIS_DSN"), get(&master, "REDIS_DSN"), "{w}");
        assert_eq!(get(&e, "METRICS_ENABLED"), "true", "{w}");
        assert_eq!(
            get(&e, "OTEL_EXPORTER_OTLP_ENDPOINT"),
            get(&master, "OTEL_EXPORTER_OTLP_ENDPOINT"),
            "{w}"
        );
        assert_eq!(get(&e, "OTEL_SERVICE_NAME"), "gpt-load-worker", "{w}");
        assert!(
            !e.contains_key("DATABASE_DSN"),
            "{w}: workers have no database"
        );
        assert_eq!(
            svc[w]["env_file"], svc["master"]["env_file"],
            "{w}: the master's AUTH_KEY and ENCRYPTION_KEY"
        );
        assert_eq!(svc[w]["image"], svc["master"]["image"], "{w}");
        assert!(svc[w]["depends_on"].get("master").is_some(), "{w}");
        assert!(
            strs(&svc[w]["healthcheck"]["test"])
                .join(" ")
                .contains("GET /health")
        );
        check_env_names(e.keys(), &known_env, w);
    }

    // OpenTelemetry collector: OTLP in, traces to debug, metrics to a Prometheus exporter.
    let otel = yaml(&deploy.join("otel-collector.yaml"));
    let protocols = &otel["receivers"]["otlp"]["protocols"];
    assert!(
        protocols["grpc"]["endpoint"]
            .as_str()
            .unwrap()
            .ends_with(":4317")
    );
    assert!(
        protocols["http"]["endpoint"]
            .as_str()
            .unwrap()
            .ends_with(":4318")
    );
    let pipelines = otel["service"]["pipelines"].as_object().expect("pipelines");
    for (name, p) in pipelines {
        for section in ["receivers", "processors", "exporters"] {
            for id in strs(&p[section]) {
                assert!(
                    otel[section].get(&id).is_some(),
                    "otel pipeline {name}: {section} {id} is not defined"
                );
            }
        }
    }
    assert!(has(&strs(&pipelines["traces"]["exporters"]), "debug"));
    assert!(has(&strs(&pipelines["metrics"]["exporters"]), "prometheus"));
    for p in ["traces", "metrics"] {
        assert!(has(&strs(&pipelines[p]["processors"]), "batch"), "{p}");
    }
    let exporter_port = otel["exporters"]["prometheus"]["endpoint"]
        .as_str()
        .and_then(|e| e.rsplit(':').next())
        .unwrap()
        .to_owned();
    let collector = &svc["otel-collector"];
    let mounted = strs(&collector["volumes"])
        .into_iter()
        .find(|v| v.starts_with("../otel-collector.yaml:"))
        .expect("the collector mounts deploy/otel-collector.yaml");
    let target = mounted.split(':').nth(1).unwrap();
    assert!(
        strs(&collector["command"]).join(" ").contains(target),
        "the collector runs with the mounted config"
    );

    // Prometheus: the master (admin key), the workers, the collector.
    let prom = yaml(&deploy.join("prometheus/prometheus.yml"));
    let jobs: BTreeMap<String, Value> = prom["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["job_name"].as_str().unwrap().to_owned(), j.clone()))
        .collect();
    let targets = |job: &str| -> BTreeSet<String> {
        jobs[job]["static_configs"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| strs(&c["targets"]))
            .collect()
    };
    assert_eq!(targets("gpt-load-master"), set(&["master:3001"]));
    assert_eq!(
        targets("gpt-load-worker"),
        set(&["worker-1:3001", "worker-2:3001"])
    );
    assert_eq!(
        targets("otel-collector"),
        BTreeSet::from([format!("otel-collector:{exporter_port}")])
    );
    let prom_cmd = strs(&svc["prometheus"]["command"]).join(" ");
    for job in ["gpt-load-master", "gpt-load-worker"] {
        assert_eq!(jobs[job]["metrics_path"], "/metrics", "{job}");
        assert_eq!(jobs[job]["authorization"]["type"], "Bearer", "{job}");
        let cred = jobs[job]["authorization"]["credentials_file"]
            .as_str()
            .unwrap();
        assert!(
            prom_cmd.contains(&format!("> {cred}")),
            "{job}: the prometheus container writes {cred} before it starts"
        );
    }
    for (job, cfg) in &jobs {
        // Target labels named like gpt-load's own labels would rename them (exported_*).
        for c in cfg["static_configs"].as_array().unwrap() {
            for l in keys(&c["labels"]) {
                assert!(
                    ![
                        "group", "channel", "role", "state", "event", "reason", "outcome", "kind"
                    ]
                    .contains(&l.as_str()),
                    "{job}: target label {l} clashes with a gpt-load label"
                );
            }
        }
    }
    assert!(
        strs(&svc["prometheus"]["volumes"])
            .iter()
            .any(|v| v.starts_with("../prometheus/prometheus.yml:/etc/prometheus/prometheus.yml")),
    );
    assert!(prom_cmd.contains("--config.file=/etc/prometheus/prometheus.yml"));

    // Grafana provisioning: the data source the dashboards default to, the dashboards folder.
    let ds = yaml(&deploy.join("grafana/provisioning/datasources/prometheus.yml"));
    let d0 = &ds["datasources"][0];
    assert_eq!(d0["uid"], "prometheus");
    assert_eq!(d0["type"], "prometheus");
    assert_eq!(d0["url"], "http://prometheus:9090");
    let prov = yaml(&deploy.join("grafana/provisioning/dashboards/dashboards.yml"));
    let path = prov["providers"][0]["options"]["path"].as_str().unwrap();
    let grafana_volumes = strs(&svc["grafana"]["volumes"]);
    assert!(
        grafana_volumes
            .iter()
            .any(|v| v.starts_with(&format!("../grafana/dashboards:{path}"))),
        "grafana mounts the dashboards where the provider looks: {grafana_volumes:?}"
    );
    assert!(
        grafana_volumes
            .iter()
            .any(|v| v.starts_with("../grafana/provisioning:/etc/grafana/provisioning")),
    );
    let home = get(
        &str_map(&svc["grafana"]["environment"]),
        "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH",
    );
    let home_file = home.strip_prefix(&format!("{path}/")).unwrap_or_default();
    assert!(
        deploy.join("grafana/dashboards").join(home_file).is_file(),
        "home dashboard {home}"
    );

    check_kubernetes(&deploy.join("k8s"), &known_env);

    // Dashboards: structure, and every metric they query is a documented one; every documented
    // metric is on some dashboard.
    let docs = documented_metrics();
    let mut families = BTreeSet::new();
    for series in dashboard_series() {
        let (family, _) = family_of(&series, &docs).unwrap_or_else(|| {
            panic!("a dashboard queries {series}, which deploy/METRICS.md does not document")
        });
        families.insert(family);
    }
    let documented: BTreeSet<String> = docs.keys().cloned().collect();
    assert_eq!(
        families, documented,
        "every documented metric is on a dashboard"
    );
}

fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objs.iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("k8s: no {kind} {name}"))
}

/// The container port a probe or Service port refers to (a number or a port name).
fn resolve_port(container: &Value, port: &Value) -> Option<u64> {
    let ports = container["ports"].as_array()?;
    match port {
        Value::Number(n) => {
            let n = n.as_u64()?;
            ports
                .iter()
                .any(|p| p["containerPort"].as_u64() == Some(n))
                .then_some(n)
        }
        Value::String(name) => ports
            .iter()
            .find(|p| p["name"].as_str() == Some(name.as_str()))?["containerPort"]
            .as_u64(),
        _ => None,
    }
}

fn assert_health_probe(container: &Value, probe: &str, what: &str) {
    let get = &container[probe]["httpGet"];
    assert_eq!(get["path"], "/health", "{what}: {probe} on /health");
    assert_eq!(
        resolve_port(container, &get["port"]),
        Some(3001),
        "{what}: {probe} on port 3001"
    );
}

fn check_kubernetes(k8s: &Path, known_env: &BTreeSet<String>) {
    let kust = yaml(&k8s.join("kustomization.yaml"));
    assert_eq!(kust["kind"], "Kustomization");
    let listed: BTreeSet<String> = strs(&kust["resources"]).into_iter().collect();
    let present: BTreeSet<String> = files_under(k8s)
        .iter()
        .filter(|p| has_ext(p, &["yml", "yaml"]))
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
        .filter(|n| n != "kustomization.yaml")
        .collect();
    assert_eq!(listed, present, "kustomization.yaml lists every manifest");

    let objs: Vec<Value> = listed
        .iter()
        .flat_map(|f| yaml_docs(&k8s.join(f)))
        .collect();
    for o in &objs {
        for field in [&o["apiVersion"], &o["kind"], &o["metadata"]["name"]] {
            assert!(
                field.as_str().is_some_and(|s| !s.is_empty()),
                "k8s object without apiVersion/kind/metadata.name: {o}"
            );
        }
    }

    let secret = find(&objs, "Secret", "gpt-load-secrets");
    for k in ["AUTH_KEY", "ENCRYPTION_KEY"] {
        let v = secret["data"][k].as_str().unwrap_or_default();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(v)
            .unwrap_or_else(|e| panic!("Secret {k}: not base64: {e}"));
        assert!(decoded.len() >= 16, "Secret {k}: a long placeholder");
    }
    let config = find(&objs, "ConfigMap", "gpt-load-config");
    check_env_names(keys(&config["data"]).iter(), known_env, "ConfigMap");
    check_env_names(keys(&secret["data"]).iter(), known_env, "Secret");

    // Every workload: env sources exist, env names are real, probes resolve.
    let workloads: Vec<&Value> = objs
        .iter()
        .filter(|o| matches!(o["kind"].as_str(), Some("Deployment" | "StatefulSet")))
        .collect();
    for w in &workloads {
        let name = w["metadata"]["name"].as_str().unwrap();
        let tpl = &w["spec"]["template"];
        for (k, v) in w["spec"]["selector"]["matchLabels"].as_object().unwrap() {
            assert_eq!(
                tpl["metadata"]["labels"][k], *v,
                "{name}: selector matches the pods"
            );
        }
        for c in tpl["spec"]["containers"].as_array().unwrap() {
            for src in c["envFrom"].as_array().into_iter().flatten() {
                if let Some(cm) = src["configMapRef"]["name"].as_str() {
                    find(&objs, "ConfigMap", cm);
                }
                if let Some(s) = src["secretRef"]["name"].as_str() {
                    find(&objs, "Secret", s);
                }
            }
            if name.starts_with("gpt-load") {
                let env: Vec<String> = c["env"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e["name"].as_str().map(str::to_owned))
                    .collect();
                check_env_names(env.iter(), known_env, name);
                for probe in ["readinessProbe", "livenessProbe"] {
                    assert_health_probe(c, probe, name);
                }
            }
        }
    }
    let env_of = |w: &Value| -> BTreeMap<String, String> {
        w["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| {
                Some((
                    e["name"].as_str()?.to_owned(),
                    e["value"].as_str()?.to_owned(),
                ))
            })
            .collect()
    };

    // The master: one replica, its Service with http and grpc, a volume for /app/data.
    let master = find(&objs, "StatefulSet", "gpt-load-master");
    assert_eq!(master["spec"]["replicas"], 1);
    let master_svc_name = master["spec"]["serviceName"].as_str().unwrap();
    let master_svc = find(&objs, "Service", master_svc_name);
    let svc_ports: BTreeMap<String, u64> = master_svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["port"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(svc_ports.get("http"), Some(&3001));
    assert_eq!(svc_ports.get("grpc"), Some(&3002));
    let mc = &master["spec"]["template"]["spec"]["containers"][0];
    let data_mount = mc["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == "/app/data")
        .expect("the master mounts /app/data");
    assert!(
        master["spec"]["volumeClaimTemplates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["metadata"]["name"] == data_mount["name"]),
        "/app/data on a PersistentVolumeClaim"
    );
    let master_env = env_of(master);
    assert!(
        master_env
            .get("DATABASE_DSN")
            .is_some_and(|d| d.starts_with("/app/data/"))
    );
    assert!(!master_env.contains_key("IS_SLAVE"));

    // Workers: a Deployment of 3 with readiness on /health, pointed at the master's gRPC port.
    let worker = find(&objs, "Deployment", "gpt-load-worker");
    assert_eq!(worker["spec"]["replicas"], 3);
    let worker_env = env_of(worker);
    assert_eq!(worker_env.get("IS_SLAVE").map(String::as_str), Some("true"));
    assert_eq!(
        worker_env.get("MASTER_GRPC_URL").cloned(),
        Some(format!("http://{master_svc_name}:{}", svc_ports["grpc"]))
    );
    assert_eq!(
        config["data"]["REDIS_DSN"], "redis://redis:6379/0",
        "the ConfigMap points at the example Redis"
    );
    find(&objs, "Deployment", "redis");
    find(&objs, "Service", "redis");
    find(&objs, "Service", "gpt-load-worker");
    find(&objs, "Namespace", "gpt-load");

    // Every Service selects a workload and its target ports exist there.
    for s in objs.iter().filter(|o| o["kind"] == "Service") {
        let name = s["metadata"]["name"].as_str().unwrap();
        let selector = s["spec"]["selector"].as_object().unwrap();
        let w = workloads
            .iter()
            .find(|w| {
                selector
                    .iter()
                    .all(|(k, v)| w["spec"]["template"]["metadata"]["labels"][k] == *v)
            })
            .unwrap_or_else(|| panic!("Service {name} selects no workload"));
        let c = &w["spec"]["template"]["spec"]["containers"][0];
        for p in s["spec"]["ports"].as_array().unwrap() {
            let target = if p["targetPort"].is_null() {
                &p["port"]
            } else {
                &p["targetPort"]
            };
            assert!(
                resolve_port(c, target).is_some(),
                "Service {name}: target port {target} is not a container port"
            );
        }
    }
}

// ------------------------------------------------------------------------------------------
// Dashboards and METRICS.md

/// Label → the values METRICS.md allows for it.
type LabelValues = BTreeMap<String, BTreeSet<String>>;

/// A metric row of `deploy/METRICS.md`.
#[derive(Debug)]
struct Documented {
    /// `counter`, `gauge` or `histogram`.
    kind: String,
    labels: BTreeSet<String>,
    /// Label values METRICS.md enumerates (labels given as a range, like `2xx`…`5xx`, are left out).
    values: LabelValues,
}

/// Parses the table of `deploy/METRICS.md`: `| name | type | labels | meaning |`.
fn documented_metrics() -> BTreeMap<String, Documented> {
    let text = read(&deploy_dir().join("METRICS.md"));
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("| `gpt_load_")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        assert!(cells.len() >= 5, "METRICS.md row: {line}");
        let name = cells[1].trim_matches('`').to_owned();
        let kind = cells[2]
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        assert!(
            ["counter", "gauge", "histogram"].contains(&kind.as_str()),
            "METRICS.md {name}: type {kind}"
        );
        let (labels, values) = parse_label_cell(cells[3]);
        out.insert(
            name,
            Documented {
                kind,
                labels,
                values,
            },
        );
    }
    assert!(out.len() >= 15, "METRICS.md documents the metrics: {out:?}");
    out
}

/// `` `group`, `status_class` (`2xx`…`5xx`), `outcome` (`success`, `failed`) `` → the label
/// names, and the values of labels whose values are listed.
fn parse_label_cell(cell: &str) -> (BTreeSet<String>, LabelValues) {
    let mut labels = BTreeSet::new();
    let mut values = LabelValues::new();
    let mut ranges = BTreeSet::new();
    let mut depth = 0i32;
    let mut current: Option<String> = None;
    let mut in_tick = false;
    let mut token = String::new();
    for c in cell.chars() {
        if in_tick {
            if c == '`' {
                in_tick = false;
                if depth == 0 {
                    labels.insert(token.clone());
                    current = Some(token.clone());
                } else if let Some(l) = &current {
                    values.entry(l.clone()).or_default().insert(token.clone());
                }
                token.clear();
            } else {
                token.push(c);
            }
            continue;
        }
        match c {
            '`' => in_tick = true,
            '(' => depth += 1,
            ')' => depth -= 1,
            '…' => {
                if let Some(l) = &current {
                    ranges.insert(l.clone());
                }
            }
            _ => {}
        }
    }
    for l in ranges {
        values.remove(&l);
    }
    (labels, values)
}

/// The documented family of a series name and its suffix: `gpt_load_keys` → (`gpt_load_keys`,
/// ""), `gpt_load_request_duration_seconds_bucket` → (`gpt_load_request_duration_seconds`,
/// "_bucket"). None when METRICS.md has no such series.
fn family_of(series: &str, docs: &BTreeMap<String, Documented>) -> Option<(String, &'static str)> {
    if docs.get(series).is_some_and(|d| d.kind != "histogram") {
        return Some((series.to_owned(), ""));
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = series.strip_suffix(suffix)
            && docs.get(base).is_some_and(|d| d.kind == "histogram")
        {
            return Some((base.to_owned(), suffix));
        }
    }
    None
}

/// The expression with its string literals blanked out.
fn strip_strings(expr: &str) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in expr.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
                out.push(' ');
            }
            None if matches!(c, '"' | '\'' | '`') => {
                quote = Some(c);
                out.push(' ');
            }
            None => out.push(c),
        }
    }
    out
}

/// Every gpt-load series a PromQL expression names.
fn promql_metric_names(expr: &str) -> BTreeSet<String> {
    strip_strings(expr)
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| t.starts_with("gpt_load_"))
        .map(str::to_owned)
        .collect()
}

/// Dashboard variables an expression uses (`$group`, `${instance}`), Grafana's own left out.
fn variables_used(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for part in expr.split('$').skip(1) {
        let part = part.strip_prefix('{').unwrap_or(part);
        let name: String = part
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() && !name.starts_with("__") {
            out.insert(name);
        }
    }
    out
}

/// The dashboards, each checked for structure; returns every series they query.
fn dashboard_series() -> BTreeSet<String> {
    let dir = deploy_dir().join("grafana/dashboards");
    let files: Vec<PathBuf> = files_under(&dir)
        .into_iter()
        .filter(|p| has_ext(p, &["json"]))
        .collect();
    let names: BTreeSet<String> = files
        .iter()
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
        .collect();
    for want in ["overview.json", "keys.json", "cluster.json"] {
        assert!(names.contains(want), "deploy/grafana/dashboards/{want}");
    }
    let mut uids = BTreeSet::new();
    let mut series = BTreeSet::new();
    for path in &files {
        let file = path.display().to_string();
        let d: Value = serde_json::from_str(&read(path))
            .unwrap_or_else(|e| panic!("{file}: invalid JSON: {e}"));
        let uid = d["uid"].as_str().unwrap_or_default();
        assert!(
            !uid.is_empty() && uids.insert(uid.to_owned()),
            "{file}: a unique uid"
        );
        assert!(
            d["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{file}: title"
        );
        assert!(
            d["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
            "{file}: schemaVersion"
        );

        // Variables: a Prometheus data-source variable defaulting to the provisioned uid.
        let vars = d["templating"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let var_names: BTreeSet<String> = vars
            .iter()
            .filter_map(|v| v["name"].as_str().map(str::to_owned))
            .collect();
        let ds_var = vars
            .iter()
            .find(|v| v["type"] == "datasource")
            .unwrap_or_else(|| panic!("{file}: a data-source variable"));
        assert_eq!(ds_var["query"], "prometheus", "{file}");
        assert_eq!(ds_var["current"]["value"], "prometheus", "{file}");
        let ds_ref = format!("${{{}}}", ds_var["name"].as_str().unwrap());
        let ds_ok =
            |v: &Value| v.is_null() || v["uid"] == ds_ref.as_str() || v["uid"] == "prometheus";
        let mut exprs: Vec<String> = Vec::new();
        for v in vars.iter().filter(|v| v["type"] == "query") {
            assert!(ds_ok(&v["datasource"]), "{file}: variable data source");
            let q = v["query"]["query"]
                .as_str()
                .or_else(|| v["query"].as_str())
                .or_else(|| v["definition"].as_str())
                .unwrap_or_default();
            assert!(!q.is_empty(), "{file}: variable {} has a query", v["name"]);
            exprs.push(q.to_owned());
        }

        // Panels (rows may nest theirs).
        let mut panels: Vec<Value> = Vec::new();
        for p in d["panels"].as_array().cloned().unwrap_or_default() {
            panels.extend(p["panels"].as_array().cloned().unwrap_or_default());
            panels.push(p);
        }
        let mut ids = BTreeSet::new();
        let mut queried_panels = 0;
        for p in &panels {
            let title = p["title"].as_str().unwrap_or_default();
            assert!(
                p["id"].as_u64().is_some_and(|id| ids.insert(id)),
                "{file} {title}: a unique panel id"
            );
            let g = &p["gridPos"];
            let (x, w) = (g["x"].as_u64().unwrap(), g["w"].as_u64().unwrap());
            assert!(x + w <= 24 && g["h"].as_u64().is_some() && g["y"].as_u64().is_some());
            if p["type"] == "row" {
                continue;
            }
            assert!(!title.is_empty(), "{file}: every panel has a title");
            assert!(ds_ok(&p["datasource"]), "{file} {title}: data source");
            let targets = p["targets"].as_array().cloned().unwrap_or_default();
            assert!(!targets.is_empty(), "{file} {title}: no query");
            for t in &targets {
                assert!(
                    ds_ok(&t["datasource"]),
                    "{file} {title}: target data source"
                );
                let expr = t["expr"].as_str().unwrap_or_default();
                assert!(!expr.is_empty(), "{file} {title}: empty expr");
                assert!(
                    !promql_metric_names(expr).is_empty(),
                    "{file} {title}: {expr} queries no gpt-load metric"
                );
                exprs.push(expr.to_owned());
            }
            queried_panels += 1;
        }
        assert!(
            queried_panels >= 8,
            "{file}: a real dashboard ({queried_panels} panels)"
        );

        for expr in &exprs {
            let bare = strip_strings(expr);
            for (open, close) in [('(', ')'), ('{', '}'), ('[', ']')] {
                assert_eq!(
                    bare.matches(open).count(),
                    bare.matches(close).count(),
                    "{file}: unbalanced {open}{close} in {expr}"
                );
            }
            for v in variables_used(expr) {
                assert!(
                    var_names.contains(&v),
                    "{file}: ${v} is not a variable: {expr}"
                );
            }
            series.extend(promql_metric_names(expr));
        }
    }
    series
}

// ------------------------------------------------------------------------------------------
// Scrapes

#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A `/metrics` answer in the Prometheus text format.
#[derive(Debug)]
struct Scrape {
    text: String,
    /// `# TYPE` lines: family → type.
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

impl Scrape {
    fn parse(text: String) -> Scrape {
        let mut types = BTreeMap::new();
        let mut samples = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut it = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (it.next(), it.next()) {
                    types.insert(name.to_owned(), kind.to_owned());
                }
            } else if !line.starts_with('#') {
                samples.push(
                    parse_sample(line).unwrap_or_else(|| panic!("unparsable sample: {line}")),
                );
            }
        }
        Scrape {
            text,
            types,
            samples,
        }
    }

    fn names(&self) -> BTreeSet<String> {
        self.samples.iter().map(|s| s.name.clone()).collect()
    }

    fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }

    /// Sum of the samples of `name` carrying every label of `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }

    /// What disagrees with METRICS.md: undocumented families or series, wrong types, labels
    /// other than the documented ones, label values outside the documented ones.
    fn problems(&self, docs: &BTreeMap<String, Documented>) -> Vec<String> {
        let mut problems = Vec::new();
        for (family, kind) in &self.types {
            // OpenMetrics names a counter family without its `_total`.
            let documented = if docs.contains_key(family) {
                Some(family.clone())
            } else if kind == "counter" && docs.contains_key(&format!("{family}_total")) {
                Some(format!("{family}_total"))
            } else {
                None
            };
            match documented {
                None => problems.push(format!(
                    "family {family} ({kind}) is not documented in deploy/METRICS.md"
                )),
                Some(d) if docs[&d].kind != *kind => problems.push(format!(
                    "{family} is exported as a {kind}, METRICS.md says {}",
                    docs[&d].kind
                )),
                Some(_) => {}
            }
        }
        for s in &self.samples {
            let Some((family, suffix)) = family_of(&s.name, docs) else {
                problems.push(format!(
                    "series {} is not documented in deploy/METRICS.md",
                    s.name
                ));
                continue;
            };
            let doc = &docs[&family];
            let mut names: BTreeSet<String> = s.labels.keys().cloned().collect();
            if suffix == "_bucket" && !names.remove("le") {
                problems.push(format!("{}: a bucket without `le`", s.name));
            }
            if names != doc.labels {
                problems.push(format!(
                    "{}: labels {names:?}, METRICS.md documents {:?}",
                    s.name, doc.labels
                ));
            }
            for (label, allowed) in &doc.values {
                if let Some(v) = s.labels.get(label)
                    && !allowed.contains(v)
                {
                    problems.push(format!(
                        "{}: {label}=\"{v}\" is not one of {allowed:?}",
                        s.name
                    ));
                }
            }
        }
        problems.sort();
        problems.dedup();
        problems
    }
}

/// Byte index of the `}` closing the label set opened at `open`.
fn label_end(line: &str, open: usize) -> Option<usize> {
    let mut in_str = false;
    let mut escaped = false;
    for (i, c) in line[open..].char_indices() {
        if in_str {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
        } else if c == '}' {
            return Some(open + i);
        }
    }
    None
}

/// `a="x",b="y\"z"` → the labels.
fn parse_labels(s: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut rest = s.trim_start_matches([',', ' ']);
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let name = rest[..eq].trim().to_owned();
        let after = rest[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => {
                    let (_, e) = chars.next()?;
                    value.push(if e == 'n' { '\n' } else { e });
                }
                '"' => break i,
                other => value.push(other),
            }
        };
        labels.insert(name, value);
        rest = after[end + 1..].trim_start_matches([',', ' ']);
    }
    Some(labels)
}

/// `name{labels} value [timestamp]`.
fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = line[..name_end].to_owned();
    let (labels, rest) = if line[name_end..].starts_with('{') {
        let close = label_end(line, name_end)?;
        (
            parse_labels(&line[name_end + 1..close])?,
            &line[close + 1..],
        )
    } else {
        (BTreeMap::new(), &line[name_end..])
    };
    let value = rest.split_whitespace().next()?;
    Some(Sample {
        name,
        labels,
        value: value.parse().unwrap_or(f64::NAN),
    })
}

/// `GET /metrics`, with the admin key or without.
async fn get_metrics(server: &Server, admin_key: bool) -> (u16, String) {
    let mut req = server.client().get(server.url("/metrics"));
    if admin_key {
        req = req.bearer_auth(ADMIN_KEY);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// Scrapes (with the admin key, as deploy/prometheus does) until `ready` or 15 s.
async fn scrape_until(server: &Server, ready: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = get_metrics(server, true).await;
        assert_eq!(
            status,
            200,
            "GET /metrics with METRICS_ENABLED=true and the admin key: {}",
            body.chars().take(300).collect::<String>()
        );
        let scrape = Scrape::parse(body);
        if ready(&scrape) || Instant::now() > deadline {
            return scrape;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Runs a health-check script the way Docker would (`bash -c`).
async fn health_script_ok(script: &str, env: &[(&str, String)]) -> bool {
    tokio::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .await
        .is_ok_and(|o| o.status.success())
}

// Series the dashboards query that a single node without Redis has no reason to export: they
// exist only in a cluster (METRICS.md: `gpt_load_workers_connected` is the master's count of
// workers, `gpt_load_records_stream_pending` the master's Redis stream backlog) or describe a
// snapshot that *arrived* from a master (`gpt_load_snapshot_age_seconds`). On a single node they
// are checked against METRICS.md only; the cluster test below finds them in real scrapes.
const CLUSTER_ONLY: &[&str] = &[
    "gpt_load_workers_connected",
    "gpt_load_records_stream_pending",
    "gpt_load_snapshot_age_seconds",
];

#[tokio::test(flavor = "multi_thread")]
async fn dashboards_query_only_metrics_a_single_node_exports() {
    let docs = documented_metrics();
    let queried = dashboard_series();
    for name in CLUSTER_ONLY {
        assert!(
            docs.contains_key(*name),
            "{name}: cluster-only, yet documented"
        );
    }
    let t = Setup::new(&[("METRICS_ENABLED", "true")]).await;

    // The Dockerfile's and the compose file's health checks pass against the real /health (and
    // fail against a closed port).
    let dockerfile = read(&deploy_dir().join("Dockerfile"));
    let docker_check = dockerfile
        .lines()
        .find_map(|l| l.trim().strip_prefix("CMD [\"bash\""))
        .map(|rest| format!("[\"bash\"{rest}"))
        .expect("HEALTHCHECK CMD [\"bash\", \"-c\", ...]");
    let docker_check: Vec<String> = serde_json::from_str(&docker_check).unwrap();
    let port = t.server.port.to_string();
    assert!(health_script_ok(&docker_check[2], &[("PORT", port.clone())]).await);
    assert!(!health_script_ok(&docker_check[2], &[("PORT", free_port().to_string())]).await);
    let compose = yaml(&deploy_dir().join("compose/single-node.yml"));
    let compose_check = strs(&compose["services"]["gpt-load"]["healthcheck"]["test"]);
    assert_eq!(compose_check[..3], ["CMD", "bash", "-c"]);
    let script = compose_check[3].replace(
        "/dev/tcp/127.0.0.1/3001",
        &format!("/dev/tcp/127.0.0.1/{port}"),
    );
    assert!(
        health_script_ok(&script, &[]).await,
        "compose health check: {script}"
    );

    // The master's /metrics wants the admin key.
    let (status, _) = get_metrics(&t.server, false).await;
    assert!(
        matches!(status, 401 | 403),
        "the master's /metrics without the admin key: {status}"
    );

    // Traffic that feeds every per-request series: first-try successes, a key blacklisted on a
    // 401 (a status retry), a key cooling down on a 429 (a rate_limited retry), streamed answers
    // with usage, a request that fails for good, and a blacklisted key restored by validation.
    let gid = t
        .group(
            "metrics-a",
            "openai",
            &[
                "sk-metrics-ok-1",
                "sk-metrics-ok-2",
                "sk-metrics-dead",
                "sk-metrics-limited",
            ],
            json!({"config": {"blacklist_threshold": 1}}),
        )
        .await;
    t.mock.set_behavior(
        Some("sk-metrics-dead"),
        Behavior::openai_invalid_key("sk-metrics-dead"),
    );
    t.mock
        .set_behavior(Some("sk-metrics-limited"), Behavior::rate_limited(60));
    for _ in 0..12 {
        let r = t.chat("metrics-a").send().await.unwrap();
        assert_eq!(r.status(), 200);
        let _ = r.bytes().await;
    }
    for _ in 0..3 {
        let r = t
            .server
            .client()
            .post(t.server.url("/proxy/metrics-a/v1/chat/completions"))
            .bearer_auth(PROXY_KEY)
            .json(&json!({"model": "gpt-4o-mini", "stream": true,
                "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": "hello"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.text().await.unwrap().contains("[DONE]"));
    }
    t.group("metrics-down", "openai", &["sk-metrics-down"], json!({}))
        .await;
    t.mock.set_behavior(
        Some("sk-metrics-down"),
        Behavior::openai_error(500, "upstream exploded", "server_error", None),
    );
    let r = t.chat("metrics-down").send().await.unwrap();
    assert_ne!(r.status(), 200);
    let _ = r.bytes().await;

    assert!(
        eventually(Duration::from_secs(5), || async {
            t.key_status(gid).await["sk-metrics-dead"].0 == "invalid"
        })
        .await
    );
    t.mock.set_behavior(Some("sk-metrics-dead"), Behavior::Ok);
    let (status, v) = t
        .server
        .post(
            "/api/keys/validate-group",
            json!({"group_id": gid, "status": "invalid"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    t.server.wait_task().await;

    let expected: BTreeSet<String> = queried
        .iter()
        .filter(|s| family_of(s, &docs).is_none_or(|(f, _)| !CLUSTER_ONLY.contains(&f.as_str())))
        .cloned()
        .collect();
    let a = [("group", "metrics-a")];
    let scrape = scrape_until(&t.server, |s| {
        expected.is_subset(&s.names())
            && s.sum("gpt_load_requests_total", &a) >= 15.0
            && s.sum(
                "gpt_load_key_events_total",
                &[("group", "metrics-a"), ("event", "restored")],
            ) >= 1.0
    })
    .await;

    // Strict on names: every series a dashboard queries is in the scrape.
    let exported = scrape.names();
    let missing: Vec<&String> = expected.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "dashboards query series the binary does not export: {missing:?}\nexported: {:?}",
        scrape.types
    );
    // Every family and series exported is documented, with its type and labels.
    let problems = scrape.problems(&docs);
    assert!(
        problems.is_empty(),
        "/metrics vs METRICS.md:\n{}",
        problems.join("\n")
    );

    // The traffic shows up where the dashboards look for it.
    let ev = |event: &str| {
        scrape.sum(
            "gpt_load_key_events_total",
            &[("group", "metrics-a"), ("event", event)],
        )
    };
    assert!(scrape.sum("gpt_load_requests_total", &a) >= 15.0);
    assert!(ev("blacklisted") >= 1.0 && ev("cooldown") >= 1.0 && ev("restored") >= 1.0);
    assert!(
        scrape.sum(
            "gpt_load_retries_total",
            &[("group", "metrics-a"), ("reason", "status")]
        ) >= 1.0
    );
    assert!(
        scrape.sum(
            "gpt_load_retries_total",
            &[("group", "metrics-a"), ("reason", "rate_limited")]
        ) >= 1.0
    );
    assert!(
        scrape.sum(
            "gpt_load_requests_total",
            &[("group", "metrics-down"), ("outcome", "failed")]
        ) >= 1.0
    );
    assert!(scrape.sum("gpt_load_key_selections_total", &a) >= 15.0);
    assert!(
        scrape.sum(
            "gpt_load_keys",
            &[("group", "metrics-a"), ("state", "cooling")]
        ) >= 1.0
    );
    assert_eq!(
        scrape.sum("gpt_load_build_info", &[("role", "master")]),
        1.0
    );

    // Never a key, never a raw path.
    for secret in [
        "sk-metrics-ok-1",
        "sk-metrics-dead",
        "sk-metrics-limited",
        PROXY_KEY,
        ADMIN_KEY,
        "sk-global-proxy-key-abcdef123456",
        "/v1/chat/completions",
        "/proxy/",
    ] {
        assert!(!scrape.text.contains(secret), "/metrics shows {secret}");
    }
}

async fn chat(node: &Server, group: &str) -> u16 {
    match node
        .client()
        .post(node.url(&format!("/proxy/{group}/v1/chat/completions")))
        .bearer_auth(PROXY_KEY)
        .timeout(Duration::from_secs(5))
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
    {
        Ok(r) => {
            let s = r.status().as_u16();
            let _ = r.bytes().await;
            s
        }
        Err(_) => 0,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboards_are_covered_by_a_cluster_master_and_worker() {
    let docs = documented_metrics();
    let queried = dashboard_series();
    let redis = RedisServer::start().await;
    let mock = MockUpstream::start().await;
    let grpc_port = free_port();
    let master = Server::start(
        Arc::new(tempfile::tempdir().unwrap()),
        &[
            ("REDIS_DSN", &redis.url()),
            ("GRPC_PORT", &grpc_port.to_string()),
            ("METRICS_ENABLED", "true"),
        ],
    )
    .await;
    let (status, v) = master
        .put(
            "/api/settings",
            json!({"request_log_write_interval_minutes": 0}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let worker = Server::start(
        Arc::new(tempfile::tempdir().unwrap()),
        &[
            ("IS_SLAVE", "true"),
            ("REDIS_DSN", &redis.url()),
            ("MASTER_GRPC_URL", &format!("http://127.0.0.1:{grpc_port}")),
            ("METRICS_ENABLED", "true"),
        ],
    )
    .await;
    let gid = master
        .create_group(
            json!({"name": "metrics-c", "channel_type": "openai", "test_model": "m",
            "upstreams": [{"url": mock.url(), "weight": 1}], "proxy_keys": PROXY_KEY}),
        )
        .await;
    let (status, v) = master
        .post(
            "/api/keys/add-multiple",
            json!({"group_id": gid, "keys_text": "sk-cluster-metrics-1,sk-cluster-metrics-2"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert!(
        eventually(Duration::from_secs(5), || async {
            chat(&worker, "metrics-c").await == 200
        })
        .await,
        "the group serves on the worker\n{}",
        worker.logs()
    );
    for _ in 0..10 {
        assert_eq!(chat(&worker, "metrics-c").await, 200);
    }
    assert_eq!(chat(&master, "metrics-c").await, 200);

    let c = [("group", "metrics-c")];
    let master_scrape = scrape_until(&master, |s| {
        s.sum("gpt_load_workers_connected", &[]) >= 1.0 && s.has("gpt_load_records_stream_pending")
    })
    .await;
    let worker_scrape = scrape_until(&worker, |s| {
        s.has("gpt_load_snapshot_age_seconds") && s.sum("gpt_load_requests_total", &c) >= 10.0
    })
    .await;

    // Between them, the master and a worker export every series any dashboard queries.
    let exported: BTreeSet<String> = master_scrape
        .names()
        .union(&worker_scrape.names())
        .cloned()
        .collect();
    let missing: Vec<&String> = queried.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "dashboards query series neither the master nor a worker exports: {missing:?}"
    );
    for (role, scrape) in [("master", &master_scrape), ("worker", &worker_scrape)] {
        let problems = scrape.problems(&docs);
        assert!(
            problems.is_empty(),
            "{role} /metrics vs METRICS.md:\n{}",
            problems.join("\n")
        );
        assert_eq!(
            scrape.sum("gpt_load_build_info", &[("role", role)]),
            1.0,
            "{role}: build info"
        );
        for secret in [
            "sk-cluster-metrics-1",
            "sk-cluster-metrics-2",
            PROXY_KEY,
            ADMIN_KEY,
        ] {
            assert!(
                !scrape.text.contains(secret),
                "{role} /metrics shows {secret}"
            );
        }
    }
    assert!(master_scrape.sum("gpt_load_workers_connected", &[]) >= 1.0);
    assert!(worker_scrape.sum("gpt_load_snapshot_version", &[]) >= 1.0);
    assert!(worker_scrape.sum("gpt_load_requests_total", &c) >= 10.0);
}
