//! The localized message catalog of the admin API (GPT-Load's `internal/i18n`).
//!
//! GPT-Load answers admin requests in one of three languages, chosen from the `Accept-Language`
//! header by [`Lang::from_accept_language`] (default: Chinese). Handlers turn a message ID such
//! as `validation.invalid_group_id` into text with [`t`], or with [`tf`] when the message has
//! Go-template placeholders such as `{{.count}}`.
//!
//! The three tables below hold the same IDs. The en-US and zh-CN texts are GPT-Load's, verbatim;
//! the ja-JP texts are GPT-Load's where upstream has them. Texts upstream lacks were written for
//! gpt-load and are marked in the tables: the group-reorder messages (zh-CN, ja-JP),
//! `validation.invalid_model_redirect` and `config.failover_status_codes(_desc)` (all three
//! languages; upstream returns the raw ID for these), and gpt-load's own messages at the end.
//!
//! Behaviour copied from GPT-Load:
//! * only the first comma-separated `Accept-Language` tag counts; `zh*`, `en*`, `ja*` pick a
//!   language, anything else (or nothing) gives zh-CN;
//! * an unknown message ID is returned as the message itself;
//! * a placeholder with no value renders as `<no value>`, like Go's `text/template`.

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

    /// The message table of this language.
    fn table(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Lang::ZhCn => ZH_CN,
            Lang::EnUs => EN_US,
            Lang::JaJp => JA_JP,
        }
    }
}

/// The raw (unrendered) text of `id` in `lang`, or `None` when the catalog has no such ID.
pub fn lookup(lang: Lang, id: &str) -> Option<&'static str> {
    lang.table()
        .iter()
        .find(|(key, _)| *key == id)
        .map(|(_, text)| *text)
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

/// The en-US messages, `(id, text)`, in GPT-Load's locale-file order.
static EN_US: &[(&str, &str)] = &[
    // Common messages
    ("success", "Operation successful"),
    ("common.success", "Success"),
    ("error", "Operation failed"),
    ("unauthorized", "Unauthorized"),
    ("forbidden", "Forbidden"),
    ("not_found", "Not found"),
    ("bad_request", "Bad request"),
    ("internal_error", "Internal error"),
    ("invalid_param", "Invalid parameter"),
    ("required_field", "Required field"),
    // Authentication related
    ("auth.invalid_key", "Invalid authorization key"),
    ("auth.key_required", "Authorization key required"),
    ("auth.login_success", "Login successful"),
    ("auth.logout_success", "Logout successful"),
    // Group related
    ("group.created", "Group created successfully"),
    ("group.updated", "Group updated successfully"),
    ("group.deleted", "Group deleted successfully"),
    ("group.not_found", "Group not found"),
    ("group.name_exists", "Group name already exists"),
    // Key related
    ("key.created", "Key created successfully"),
    ("key.updated", "Key updated successfully"),
    ("key.deleted", "Key deleted successfully"),
    ("key.not_found", "Key not found"),
    ("key.invalid", "Invalid key"),
    ("key.check_started", "Key check started"),
    ("key.check_completed", "Key check completed"),
    // Settings related
    ("settings.updated", "Settings updated successfully"),
    ("settings.reset", "Settings reset"),
    // Logs related
    ("logs.cleared", "Logs cleared"),
    ("logs.exported", "Logs exported successfully"),
    // Validation related
    (
        "validation.invalid_group_name",
        "Invalid group name. Can only contain lowercase letters, numbers, hyphens or underscores, 1-100 characters",
    ),
    (
        "validation.invalid_test_path",
        "Invalid test path. If provided, must be a valid path starting with / and not a full URL.",
    ),
    ("validation.duplicate_header", "Duplicate header: {{.key}}"),
    ("validation.group_not_found", "Group not found"),
    ("validation.invalid_status_filter", "Invalid status filter"),
    ("validation.invalid_group_id", "Invalid group ID format"),
    ("validation.test_model_required", "Test model is required"),
    (
        "validation.invalid_copy_keys_value",
        "Invalid copy_keys value. Must be 'none', 'valid_only', or 'all'",
    ),
    (
        "validation.invalid_channel_type",
        "Invalid channel type. Supported types: {{.types}}",
    ),
    (
        "validation.test_model_empty",
        "Test model cannot be empty or contain only spaces",
    ),
    ("validation.invalid_status_value", "Invalid status value"),
    (
        "validation.invalid_upstreams",
        "Invalid upstreams configuration: {{.error}}",
    ),
    (
        "validation.group_id_required",
        "group_id query parameter is required",
    ),
    (
        "validation.invalid_group_id_format",
        "Invalid group_id format",
    ),
    ("validation.keys_text_empty", "Keys text cannot be empty"),
    ("validation.file_required", "File is required"),
    (
        "validation.only_txt_supported",
        "Only .txt files are supported",
    ),
    ("validation.failed_to_open_file", "Failed to open file"),
    (
        "validation.failed_to_read_file",
        "Failed to read file content",
    ),
    (
        "validation.invalid_group_type",
        "Invalid group type, must be 'standard' or 'aggregate'",
    ),
    (
        "validation.sub_groups_required",
        "Aggregate group must contain at least one sub-group",
    ),
    ("validation.invalid_sub_group_id", "Invalid sub-group ID"),
    (
        "validation.sub_group_not_found",
        "One or more sub-groups not found",
    ),
    (
        "validation.sub_group_cannot_be_aggregate",
        "Sub-groups cannot be aggregate groups",
    ),
    (
        "validation.sub_group_channel_mismatch",
        "All sub-groups must use the same channel type",
    ),
    (
        "validation.sub_group_validation_endpoint_mismatch",
        "Sub-group endpoints are inconsistent. Aggregate groups require unified upstream request paths for successful proxying",
    ),
    (
        "validation.sub_group_weight_negative",
        "Sub-group weight cannot be negative",
    ),
    (
        "validation.sub_group_weight_max_exceeded",
        "Sub-group weight cannot exceed 1000",
    ),
    (
        "validation.sub_group_referenced_cannot_modify",
        "This group is referenced by {{.count}} aggregate group(s) as a sub-group. Cannot modify channel type or validation endpoint. Please remove this group from related aggregate groups before making changes",
    ),
    (
        "validation.standard_group_requires_upstreams_testmodel",
        "Converting to standard group requires providing upstreams and test model",
    ),
    (
        "validation.aggregate_no_model_redirect",
        "Aggregate groups do not support model redirect rules",
    ),
    // Not in GPT-Load: gpt-load's text.
    (
        "validation.invalid_model_redirect",
        "Invalid model redirect rules: {{.error}}",
    ),
    (
        "validation.reorder_items_required",
        "Reorder items cannot be empty",
    ),
    (
        "validation.reorder_group_id",
        "Reorder item contains invalid group ID",
    ),
    (
        "validation.reorder_sort_negative",
        "Sort value cannot be negative",
    ),
    (
        "validation.reorder_duplicate_group",
        "Duplicate group ID in reorder items: {{.id}}",
    ),
    (
        "validation.reorder_group_not_found",
        "Reorder items contain non-existent group",
    ),
    // Task related
    ("task.validation_started", "Key validation task started"),
    ("task.import_started", "Key import task started"),
    ("task.delete_started", "Key deletion task started"),
    ("task.already_running", "A task is already running"),
    ("task.get_status_failed", "Failed to get task status"),
    // Dashboard related
    ("dashboard.invalid_keys", "Invalid Keys"),
    ("dashboard.success_requests", "Success"),
    ("dashboard.failed_requests", "Failed"),
    (
        "dashboard.auth_key_missing",
        "AUTH_KEY is not set, system cannot function properly",
    ),
    (
        "dashboard.auth_key_required",
        "AUTH_KEY must be set to protect the admin interface",
    ),
    (
        "dashboard.encryption_key_missing",
        "ENCRYPTION_KEY is not set, sensitive data will be stored in plain text",
    ),
    (
        "dashboard.encryption_key_recommended",
        "It is strongly recommended to set ENCRYPTION_KEY to encrypt sensitive data like API keys",
    ),
    ("dashboard.global_proxy_key", "Global Proxy Key"),
    ("dashboard.group_proxy_key", "Group Proxy Key"),
    (
        "dashboard.encryption_key_configured_but_data_not_encrypted",
        "ENCRYPTION_KEY is configured but the keys in database are not encrypted. This will cause keys to be unreadable (shown as failed-to-decrypt).",
    ),
    (
        "dashboard.encryption_key_migration_required",
        "Please stop the service, run the key migration command and restart",
    ),
    (
        "dashboard.data_encrypted_but_key_not_configured",
        "Keys in database are encrypted but ENCRYPTION_KEY is not configured. This will cause keys to be unreadable.",
    ),
    (
        "dashboard.configure_same_encryption_key",
        "Please configure the same ENCRYPTION_KEY used for encryption, or run decryption migration",
    ),
    (
        "dashboard.encryption_key_mismatch",
        "The configured ENCRYPTION_KEY does not match the key used for encryption. This will cause decryption to fail (shown as failed-to-decrypt).",
    ),
    (
        "dashboard.use_correct_encryption_key",
        "Please use the correct ENCRYPTION_KEY, or run key migration",
    ),
    // Database related
    ("database.cannot_get_groups", "Cannot get groups list"),
    ("database.rpm_stats_failed", "Failed to get RPM statistics"),
    (
        "database.current_stats_failed",
        "Failed to get current period statistics",
    ),
    (
        "database.previous_stats_failed",
        "Failed to get previous period statistics",
    ),
    ("database.chart_data_failed", "Failed to get chart data"),
    (
        "database.group_stats_failed",
        "Failed to get partial statistics",
    ),
    // Success messages
    (
        "success.group_deleted",
        "Group and related keys deleted successfully",
    ),
    ("success.keys_restored", "{{.count}} keys restored"),
    (
        "success.invalid_keys_cleared",
        "{{.count}} invalid keys cleared",
    ),
    ("success.all_keys_cleared", "{{.count}} keys cleared"),
    ("success.groups_reordered", "Group order saved"),
    // Password security related
    (
        "security.password_too_short",
        "{{.keyType}} is too short ({{.length}} characters), recommend at least 16 characters",
    ),
    (
        "security.password_short",
        "{{.keyType}} is short ({{.length}} characters), recommend 32+ characters",
    ),
    (
        "security.password_weak_pattern",
        "{{.keyType}} contains common weak password patterns: {{.pattern}}",
    ),
    (
        "security.password_low_complexity",
        "{{.keyType}} has low complexity, missing combination of upper/lowercase, numbers, or special characters",
    ),
    (
        "security.password_recommendation_16",
        "Use a strong password with at least 16 characters, 32+ recommended",
    ),
    (
        "security.password_recommendation_32",
        "Recommend using passwords with 32+ characters for better security",
    ),
    (
        "security.password_avoid_common",
        "Avoid common words, suggest using randomly generated strong passwords",
    ),
    (
        "security.password_complexity",
        "Suggest including upper/lowercase letters, numbers and special characters to improve password strength",
    ),
    // Config related
    ("config.updated", "Configuration updated successfully"),
    ("config.app_url", "Application URL"),
    (
        "config.app_url_desc",
        "Base URL of the application, used for constructing group endpoint addresses. System config takes precedence over APP_URL environment variable.",
    ),
    ("config.proxy_keys", "Global Proxy Keys"),
    (
        "config.proxy_keys_desc",
        "Global proxy keys for accessing all group proxy endpoints. Separate multiple keys with commas.",
    ),
    ("config.log_retention_days", "Log Retention Days"),
    (
        "config.log_retention_days_desc",
        "Number of days to retain request logs in database, 0 to keep logs forever.",
    ),
    ("config.log_write_interval", "Log Write Interval (minutes)"),
    (
        "config.log_write_interval_desc",
        "Interval (in minutes) for writing request logs from cache to database, 0 for real-time writes.",
    ),
    (
        "config.enable_request_body_logging",
        "Enable Request Body Logging",
    ),
    (
        "config.enable_request_body_logging_desc",
        "Whether to log complete request body content. Enabling this will increase memory and storage usage.",
    ),
    // Request settings related
    ("config.request_timeout", "Request Timeout (seconds)"),
    (
        "config.request_timeout_desc",
        "Complete lifecycle timeout (seconds) for forwarded requests.",
    ),
    ("config.connect_timeout", "Connect Timeout (seconds)"),
    (
        "config.connect_timeout_desc",
        "Timeout (seconds) for establishing new connections to upstream services.",
    ),
    (
        "config.idle_conn_timeout",
        "Idle Connection Timeout (seconds)",
    ),
    (
        "config.idle_conn_timeout_desc",
        "Timeout (seconds) for idle connections in the HTTP client.",
    ),
    (
        "config.response_header_timeout",
        "Response Header Timeout (seconds)",
    ),
    (
        "config.response_header_timeout_desc",
        "Maximum time (seconds) to wait for response headers from upstream services.",
    ),
    ("config.max_idle_conns", "Max Idle Connections"),
    (
        "config.max_idle_conns_desc",
        "Maximum number of idle connections allowed in the HTTP client connection pool.",
    ),
    (
        "config.max_idle_conns_per_host",
        "Max Idle Connections Per Host",
    ),
    (
        "config.max_idle_conns_per_host_desc",
        "Maximum number of idle connections allowed per upstream host in the HTTP client connection pool.",
    ),
    ("config.proxy_url", "Proxy Server URL"),
    (
        "config.proxy_url_desc",
        "Global HTTP/HTTPS proxy server URL, e.g., http://user:pass@host:port. If empty, uses environment variable configuration.",
    ),
    // Key config related
    ("config.max_retries", "Max Retries"),
    (
        "config.max_retries_desc",
        "Maximum number of retries for a single request using different keys, 0 for no retries.",
    ),
    ("config.blacklist_threshold", "Blacklist Threshold"),
    (
        "config.blacklist_threshold_desc",
        "Number of consecutive failures before a key is blacklisted, 0 to disable blacklisting.",
    ),
    // Not in GPT-Load: gpt-load's text.
    ("config.failover_status_codes", "Failover Status Codes"),
    // Not in GPT-Load: gpt-load's text.
    (
        "config.failover_status_codes_desc",
        "Upstream HTTP status codes that count as a key failure and trigger a retry with another key, as comma-separated codes or ranges (e.g. 400-403,405-999). Other status codes are passed through to the client.",
    ),
    (
        "config.key_validation_interval",
        "Key Validation Interval (minutes)",
    ),
    (
        "config.key_validation_interval_desc",
        "Default interval (minutes) for background key validation.",
    ),
    (
        "config.key_validation_concurrency",
        "Key Validation Concurrency",
    ),
    (
        "config.key_validation_concurrency_desc",
        "Concurrency level for background invalid key validation. Keep below 20 for SQLite or low-performance environments to avoid data consistency issues.",
    ),
    (
        "config.key_validation_timeout",
        "Key Validation Timeout (seconds)",
    ),
    (
        "config.key_validation_timeout_desc",
        "API request timeout (seconds) when validating a single key in the background.",
    ),
    // Category labels
    ("config.category.basic", "Basic"),
    ("config.category.request", "Request Settings"),
    ("config.category.key", "Key Configuration"),
    // Internal error messages (for fmt.Errorf usage)
    ("error.upstreams_required", "upstreams field is required"),
    ("error.invalid_upstreams_format", "invalid upstreams format"),
    (
        "error.at_least_one_upstream",
        "at least one upstream is required",
    ),
    ("error.upstream_url_empty", "upstream URL cannot be empty"),
    (
        "error.upstream_weight_positive",
        "upstream weight must be a positive integer",
    ),
    (
        "error.marshal_upstreams_failed",
        "failed to marshal cleaned upstreams",
    ),
    (
        "error.invalid_config_format",
        "Invalid config format: {{.error}}",
    ),
    (
        "error.process_header_rules",
        "Failed to process header rules: {{.error}}",
    ),
    (
        "error.invalidate_group_cache",
        "failed to invalidate group cache",
    ),
    (
        "error.unmarshal_header_rules",
        "Failed to unmarshal header rules",
    ),
    (
        "error.delete_group_cache",
        "Failed to delete group: unable to clean up cache",
    ),
    (
        "error.decrypt_key_copy",
        "Failed to decrypt key during group copy, skipping",
    ),
    (
        "error.start_import_task",
        "Failed to start async key import task for group copy",
    ),
    ("error.export_logs", "Failed to export logs"),
    // Login related
    ("auth.invalid_request", "Invalid request format"),
    (
        "auth.authentication_successful",
        "Authentication successful",
    ),
    ("auth.authentication_failed", "Authentication failed"),
    // Settings success message
    (
        "settings.update_success",
        "Settings updated successfully. Configuration will be reloaded in the background across all instances.",
    ),
    // Sub-groups related
    ("success.sub_groups_added", "Sub groups added successfully"),
    (
        "success.sub_group_weight_updated",
        "Sub group weight updated successfully",
    ),
    (
        "success.sub_group_deleted",
        "Sub group deleted successfully",
    ),
    ("group.not_aggregate", "Group is not an aggregate group"),
    (
        "group.sub_group_already_exists",
        "Sub group {{.sub_group_id}} already exists",
    ),
    ("group.sub_group_not_found", "Sub group not found"),
    // gpt-load's own additions (not in GPT-Load)
    (
        "auth.too_many_attempts",
        "Too many failed login attempts, retry in {{.seconds}} seconds",
    ),
    (
        "validation.body_too_large",
        "Request body too large (limit {{.limit}} bytes)",
    ),
    (
        "security.admin_key_is_proxy_key",
        "AUTH_KEY is also accepted as a proxy key ({{.where}}): anyone holding a proxy key can administer gpt-load",
    ),
    (
        "security.admin_key_is_proxy_key_suggestion",
        "Use a different proxy key and keep AUTH_KEY for the admin UI only",
    ),
    ("error.route_not_found", "Not Found"),
];

/// The zh-CN (the default language) messages, `(id, text)`, in GPT-Load's locale-file order.
static ZH_CN: &[(&str, &str)] = &[
    // Common messages
    ("success", "操作成功"),
    ("common.success", "操作成功"),
    ("error", "操作失败"),
    ("unauthorized", "未授权"),
    ("forbidden", "禁止访问"),
    ("not_found", "未找到"),
    ("bad_request", "请求错误"),
    ("internal_error", "内部错误"),
    ("invalid_param", "参数无效"),
    ("required_field", "必填字段"),
    // Authentication related
    ("auth.invalid_key", "无效的授权密钥"),
    ("auth.key_required", "需要授权密钥"),
    ("auth.login_success", "登录成功"),
    ("auth.logout_success", "退出成功"),
    // Group related
    ("group.created", "分组创建成功"),
    ("group.updated", "分组更新成功"),
    ("group.deleted", "分组删除成功"),
    ("group.not_found", "分组不存在"),
    ("group.name_exists", "分组名称已存在"),
    // Key related
    ("key.created", "密钥创建成功"),
    ("key.updated", "密钥更新成功"),
    ("key.deleted", "密钥删除成功"),
    ("key.not_found", "密钥不存在"),
    ("key.invalid", "密钥无效"),
    ("key.check_started", "密钥检查已开始"),
    ("key.check_completed", "密钥检查完成"),
    // Settings related
    ("settings.updated", "设置更新成功"),
    ("settings.reset", "设置已重置"),
    // Logs related
    ("logs.cleared", "日志已清除"),
    ("logs.exported", "日志导出成功"),
    // Validation related
    (
        "validation.invalid_group_name",
        "无效的分组名称。只能包含小写字母、数字、中划线或下划线，长度1-100位",
    ),
    (
        "validation.invalid_test_path",
        "无效的测试路径。如果提供，必须是以 / 开头的有效路径，且不能是完整的URL。",
    ),
    ("validation.duplicate_header", "重复的请求头: {{.key}}"),
    ("validation.group_not_found", "分组不存在"),
    ("validation.invalid_status_filter", "无效的状态过滤器"),
    ("validation.invalid_group_id", "无效的分组ID格式"),
    ("validation.test_model_required", "测试模型是必需的"),
    (
        "validation.invalid_copy_keys_value",
        "无效的copy_keys值。必须是'none'、'valid_only'或'all'",
    ),
    (
        "validation.invalid_channel_type",
        "无效的通道类型。支持的类型有: {{.types}}",
    ),
    ("validation.test_model_empty", "测试模型不能为空或只有空格"),
    ("validation.invalid_status_value", "无效的状态值"),
    (
        "validation.invalid_upstreams",
        "upstreams配置错误: {{.error}}",
    ),
    ("validation.group_id_required", "需要提供group_id参数"),
    ("validation.invalid_group_id_format", "无效的group_id格式"),
    ("validation.keys_text_empty", "密钥文本不能为空"),
    ("validation.file_required", "需要上传文件"),
    ("validation.only_txt_supported", "仅支持.txt文件"),
    ("validation.failed_to_open_file", "无法打开文件"),
    ("validation.failed_to_read_file", "无法读取文件内容"),
    (
        "validation.invalid_group_type",
        "无效的分组类型，必须为'standard'或'aggregate'",
    ),
    (
        "validation.sub_groups_required",
        "聚合分组必须包含至少一个子分组",
    ),
    ("validation.invalid_sub_group_id", "无效的子分组ID"),
    ("validation.sub_group_not_found", "一个或多个子分组不存在"),
    (
        "validation.sub_group_cannot_be_aggregate",
        "子分组不能是聚合分组",
    ),
    (
        "validation.sub_group_channel_mismatch",
        "所有子分组必须使用相同的渠道类型",
    ),
    (
        "validation.sub_group_validation_endpoint_mismatch",
        "子分组请求端点不一致，聚合分组需要统一的上游请求路径以确保透传成功",
    ),
    (
        "validation.sub_group_weight_negative",
        "子分组权重不能为负数",
    ),
    (
        "validation.sub_group_weight_max_exceeded",
        "子分组权重不能超过1000",
    ),
    (
        "validation.sub_group_referenced_cannot_modify",
        "该分组正被 {{.count}} 个聚合分组引用为子分组，无法修改渠道类型或验证端点。请先从相关聚合分组中移除此分组后再进行修改",
    ),
    (
        "validation.standard_group_requires_upstreams_testmodel",
        "转换为标准分组需要提供上游服务器和测试模型",
    ),
    (
        "validation.aggregate_no_model_redirect",
        "聚合分组不支持配置模型重定向规则",
    ),
    // Not in GPT-Load: gpt-load's text.
    (
        "validation.invalid_model_redirect",
        "无效的模型重定向规则: {{.error}}",
    ),
    // Not in GPT-Load: gpt-load's text.
    ("validation.reorder_items_required", "排序项不能为空"),
    // Not in GPT-Load: gpt-load's text.
    ("validation.reorder_group_id", "排序项包含无效的分组ID"),
    // Not in GPT-Load: gpt-load's text.
    ("validation.reorder_sort_negative", "排序值不能为负数"),
    // Not in GPT-Load: gpt-load's text.
    (
        "validation.reorder_duplicate_group",
        "排序项中存在重复的分组ID: {{.id}}",
    ),
    // Not in GPT-Load: gpt-load's text.
    (
        "validation.reorder_group_not_found",
        "排序项中包含不存在的分组",
    ),
    // Task related
    ("task.validation_started", "密钥验证任务已开始"),
    ("task.import_started", "密钥导入任务已开始"),
    ("task.delete_started", "密钥删除任务已开始"),
    ("task.already_running", "已有任务正在运行"),
    ("task.get_status_failed", "获取任务状态失败"),
    // Dashboard related
    ("dashboard.invalid_keys", "无效密钥数量"),
    ("dashboard.success_requests", "成功请求"),
    ("dashboard.failed_requests", "失败请求"),
    (
        "dashboard.auth_key_missing",
        "AUTH_KEY未设置，系统无法正常工作",
    ),
    (
        "dashboard.auth_key_required",
        "必须设置AUTH_KEY以保护管理界面",
    ),
    (
        "dashboard.encryption_key_missing",
        "未设置ENCRYPTION_KEY，敏感数据将明文存储",
    ),
    (
        "dashboard.encryption_key_recommended",
        "强烈建议设置ENCRYPTION_KEY以加密保护API密钥等敏感数据",
    ),
    ("dashboard.global_proxy_key", "全局代理密钥"),
    ("dashboard.group_proxy_key", "分组代理密钥"),
    (
        "dashboard.encryption_key_configured_but_data_not_encrypted",
        "检测到您已配置 ENCRYPTION_KEY，但数据库中的密钥尚未加密。这会导致密钥无法正常读取（显示为 failed-to-decrypt）。",
    ),
    (
        "dashboard.encryption_key_migration_required",
        "请停止服务，执行密钥迁移命令后重启",
    ),
    (
        "dashboard.data_encrypted_but_key_not_configured",
        "检测到数据库中的密钥已加密，但未配置 ENCRYPTION_KEY。这会导致密钥无法正常读取。",
    ),
    (
        "dashboard.configure_same_encryption_key",
        "请配置与加密时相同的 ENCRYPTION_KEY，或执行解密迁移",
    ),
    (
        "dashboard.encryption_key_mismatch",
        "检测到您配置的 ENCRYPTION_KEY 与数据加密时使用的密钥不匹配。这会导致密钥解密失败（显示为 failed-to-decrypt）。",
    ),
    (
        "dashboard.use_correct_encryption_key",
        "请使用正确的 ENCRYPTION_KEY，或执行密钥迁移",
    ),
    // Database related
    ("database.cannot_get_groups", "无法获取分组列表"),
    ("database.rpm_stats_failed", "获取RPM统计失败"),
    ("database.current_stats_failed", "获取当前期间统计失败"),
    ("database.previous_stats_failed", "获取上一期间统计失败"),
    ("database.chart_data_failed", "获取图表数据失败"),
    ("database.group_stats_failed", "获取部分统计信息失败"),
    // Success messages
    ("success.group_deleted", "分组及相关密钥删除成功"),
    ("success.keys_restored", "{{.count}}个密钥已恢复"),
    ("success.invalid_keys_cleared", "{{.count}}个无效密钥已清除"),
    ("success.all_keys_cleared", "{{.count}}个密钥已清除"),
    // Not in GPT-Load: gpt-load's text.
    ("success.groups_reordered", "分组排序已保存"),
    // Password security related
    (
        "security.password_too_short",
        "{{.keyType}}长度不足（{{.length}}字符），建议至少16字符",
    ),
    (
        "security.password_short",
        "{{.keyType}}长度偏短（{{.length}}字符），建议32字符以上",
    ),
    (
        "security.password_weak_pattern",
        "{{.keyType}}包含常见弱密码模式：{{.pattern}}",
    ),
    (
        "security.password_low_complexity",
        "{{.keyType}}复杂度不足，缺少大小写字母、数字或特殊字符的组合",
    ),
    (
        "security.password_recommendation_16",
        "使用至少16个字符的强密码，推荐32字符以上",
    ),
    (
        "security.password_recommendation_32",
        "推荐使用32个字符以上的密码以提高安全性",
    ),
    (
        "security.password_avoid_common",
        "避免使用常见单词，建议使用随机生成的强密码",
    ),
    (
        "security.password_complexity",
        "建议包含大小写字母、数字和特殊字符以提高密码强度",
    ),
    // Config related
    ("config.updated", "配置更新成功"),
    ("config.app_url", "项目地址"),
    (
        "config.app_url_desc",
        "项目的基础 URL，用于拼接分组终端节点地址。系统配置优先于环境变量 APP_URL。",
    ),
    ("config.proxy_keys", "全局代理密钥"),
    (
        "config.proxy_keys_desc",
        "全局代理密钥，用于访问所有分组的代理端点。多个密钥请用逗号分隔。",
    ),
    ("config.log_retention_days", "日志保留时长（天）"),
    (
        "config.log_retention_days_desc",
        "请求日志在数据库中的保留天数，0为不清理日志。",
    ),
    ("config.log_write_interval", "日志延迟写入周期（分钟）"),
    (
        "config.log_write_interval_desc",
        "请求日志从缓存写入数据库的周期（分钟），0为实时写入数据。",
    ),
    ("config.enable_request_body_logging", "启用日志详情"),
    (
        "config.enable_request_body_logging_desc",
        "是否在请求日志中记录完整的请求体内容。启用此功能会增加内存以及存储空间的占用。",
    ),
    // Request settings related
    ("config.request_timeout", "请求超时（秒）"),
    (
        "config.request_timeout_desc",
        "转发请求的完整生命周期超时（秒）等。",
    ),
    ("config.connect_timeout", "连接超时（秒）"),
    (
        "config.connect_timeout_desc",
        "与上游服务建立新连接的超时时间（秒）。",
    ),
    ("config.idle_conn_timeout", "空闲连接超时（秒）"),
    (
        "config.idle_conn_timeout_desc",
        "HTTP 客户端中空闲连接的超时时间（秒）。",
    ),
    ("config.response_header_timeout", "响应头超时（秒）"),
    (
        "config.response_header_timeout_desc",
        "等待上游服务响应头的最长时间（秒）。",
    ),
    ("config.max_idle_conns", "最大空闲连接数"),
    (
        "config.max_idle_conns_desc",
        "HTTP 客户端连接池中允许的最大空闲连接总数。",
    ),
    ("config.max_idle_conns_per_host", "每主机最大空闲连接数"),
    (
        "config.max_idle_conns_per_host_desc",
        "HTTP 客户端连接池对每个上游主机允许的最大空闲连接数。",
    ),
    ("config.proxy_url", "代理服务器地址"),
    (
        "config.proxy_url_desc",
        "全局 HTTP/HTTPS 代理服务器地址，例如：http://user:pass@host:port。如果为空，则使用环境变量配置。",
    ),
    // Key config related
    ("config.max_retries", "最大重试次数"),
    (
        "config.max_retries_desc",
        "单个请求使用不同 Key 的最大重试次数，0为不重试。",
    ),
    ("config.blacklist_threshold", "黑名单阈值"),
    (
        "config.blacklist_threshold_desc",
        "一个 Key 连续失败多少次后进入黑名单，0为不拉黑。",
    ),
    // Not in GPT-Load: gpt-load's text.
    ("config.failover_status_codes", "故障转移状态码"),
    // Not in GPT-Load: gpt-load's text.
    (
        "config.failover_status_codes_desc",
        "计为 Key 失败并触发更换 Key 重试的上游 HTTP 状态码，多个状态码或范围用逗号分隔（例如 400-403,405-999）。其他状态码将直接返回给客户端。",
    ),
    ("config.key_validation_interval", "密钥验证间隔（分钟）"),
    (
        "config.key_validation_interval_desc",
        "后台验证密钥的默认间隔（分钟）。",
    ),
    ("config.key_validation_concurrency", "密钥验证并发数"),
    (
        "config.key_validation_concurrency_desc",
        "后台定时验证无效 Key 时的并发数，如果使用SQLite或者运行环境性能不佳，请尽量保证20以下，避免过高的并发导致数据不一致问题。",
    ),
    ("config.key_validation_timeout", "密钥验证超时（秒）"),
    (
        "config.key_validation_timeout_desc",
        "后台定时验证单个 Key 时的 API 请求超时时间（秒）。",
    ),
    // Category labels
    ("config.category.basic", "基础参数"),
    ("config.category.request", "请求设置"),
    ("config.category.key", "密钥配置"),
    // Internal error messages (for fmt.Errorf usage)
    ("error.upstreams_required", "upstreams字段是必需的"),
    ("error.invalid_upstreams_format", "upstreams格式无效"),
    ("error.at_least_one_upstream", "至少需要一个upstream"),
    ("error.upstream_url_empty", "upstream URL不能为空"),
    ("error.upstream_weight_positive", "upstream权重必须是正整数"),
    (
        "error.marshal_upstreams_failed",
        "序列化清理后的upstreams失败",
    ),
    ("error.invalid_config_format", "无效的配置格式: {{.error}}"),
    (
        "error.process_header_rules",
        "处理请求头规则失败: {{.error}}",
    ),
    ("error.invalidate_group_cache", "刷新分组缓存失败"),
    ("error.unmarshal_header_rules", "解析请求头规则失败"),
    ("error.delete_group_cache", "删除分组失败: 无法清理缓存"),
    ("error.decrypt_key_copy", "解密密钥时失败，跳过该密钥"),
    ("error.start_import_task", "启动异步密钥导入任务失败"),
    ("error.export_logs", "导出日志失败"),
    // Login related
    ("auth.invalid_request", "无效的请求格式"),
    ("auth.authentication_successful", "认证成功"),
    ("auth.authentication_failed", "认证失败"),
    // Settings success message
    (
        "settings.update_success",
        "设置更新成功。配置将在后台在所有实例间重新加载。",
    ),
    // Sub-groups related
    ("success.sub_groups_added", "子分组添加成功"),
    ("success.sub_group_weight_updated", "子分组权重更新成功"),
    ("success.sub_group_deleted", "子分组删除成功"),
    ("group.not_aggregate", "该分组不是聚合分组"),
    (
        "group.sub_group_already_exists",
        "子分组{{.sub_group_id}}已存在",
    ),
    ("group.sub_group_not_found", "子分组不存在"),
    // gpt-load's own additions (not in GPT-Load)
    (
        "auth.too_many_attempts",
        "登录失败次数过多，请在 {{.seconds}} 秒后重试",
    ),
    (
        "validation.body_too_large",
        "请求体过大（上限 {{.limit}} 字节）",
    ),
    (
        "security.admin_key_is_proxy_key",
        "AUTH_KEY 同时被用作代理密钥（{{.where}}）：任何持有该代理密钥的人都可以管理 gpt-load",
    ),
    (
        "security.admin_key_is_proxy_key_suggestion",
        "请使用不同的代理密钥，AUTH_KEY 只用于管理界面",
    ),
    ("error.route_not_found", "未找到"),
];

/// The ja-JP messages, `(id, text)`, in GPT-Load's locale-file order.
static JA_JP: &[(&str, &str)] = &[
    // Common messages
    ("success", "操作成功"),
    ("common.success", "成功"),
    ("error", "操作失敗"),
    ("unauthorized", "未認証"),
    ("forbidden", "アクセス拒否"),
    ("not_found", "見つかりません"),
    ("bad_request", "不正なリクエスト"),
    ("internal_error", "内部エラー"),
    ("invalid_param", "無効なパラメータ"),
    ("required_field", "必須フィールド"),
    // Authentication related
    ("auth.invalid_key", "無効な認証キー"),
    ("auth.key_required", "認証キーが必要です"),
    ("auth.login_success", "ログイン成功"),
    ("auth.logout_success", "ログアウト成功"),
    // Group related
    ("group.created", "グループが作成されました"),
    ("group.updated", "グループが更新されました"),
    ("group.deleted", "グループが削除されました"),
    ("group.not_found", "グループが存在しません"),
    ("group.name_exists", "グループ名が既に存在します"),
    // Key related
    ("key.created", "キーが作成されました"),
    ("key.updated", "キーが更新されました"),
    ("key.deleted", "キーが削除されました"),
    ("key.not_found", "キーが存在しません"),
    ("key.invalid", "無効なキー"),
    ("key.check_started", "キーチェックが開始されました"),
    ("key.check_completed", "キーチェックが完了しました"),
    // Settings related
    ("settings.updated", "設定が更新されました"),
    ("settings.reset", "設定がリセットされました"),
    // Logs related
    ("logs.cleared", "ログがクリアされました"),
    ("logs.exported", "ログがエクスポートされました"),
    // Validation related
    (
        "validation.invalid_group_name",
        "無効なグループ名。小文字、数字、ハイフン、アンダースコアのみ使用可能、1-100文字",
    ),
    (
        "validation.invalid_test_path",
        "無効なテストパス。指定する場合は / で始まる有効なパスであり、完全なURLではない必要があります。",
    ),
    ("validation.duplicate_header", "重複ヘッダー: {{.key}}"),
    ("validation.group_not_found", "グループが見つかりません"),
    (
        "validation.invalid_status_filter",
        "無効なステータスフィルター",
    ),
    ("validation.invalid_group_id", "無効なグループID形式"),
    ("validation.test_model_required", "テストモデルが必要です"),
    (
        "validation.invalid_copy_keys_value",
        "無効なcopy_keys値。'none'、'valid_only'、'all'のいずれかである必要があります",
    ),
    (
        "validation.invalid_channel_type",
        "無効なチャンネルタイプ。サポートされるタイプ: {{.types}}",
    ),
    (
        "validation.test_model_empty",
        "テストモデルは空またはスペースのみにできません",
    ),
    ("validation.invalid_status_value", "無効なステータス値"),
    (
        "validation.invalid_upstreams",
        "無効なupstreams設定: {{.error}}",
    ),
    (
        "validation.group_id_required",
        "group_idクエリパラメータが必要です",
    ),
    ("validation.invalid_group_id_format", "無効なgroup_id形式"),
    ("validation.keys_text_empty", "キーテキストは空にできません"),
    ("validation.file_required", "ファイルが必要です"),
    (
        "validation.only_txt_supported",
        ".txtファイルのみサポートされています",
    ),
    (
        "validation.failed_to_open_file",
        "ファイルを開けませんでした",
    ),
    (
        "validation.failed_to_read_file",
        "ファイルの内容を読み取れませんでした",
    ),
    (
        "validation.invalid_group_type",
        "無効なグループタイプ、'standard'または'aggregate'である必要があります",
    ),
    (
        "validation.sub_groups_required",
        "集約グループには少なくとも1つのサブグループが必要です",
    ),
    ("validation.invalid_sub_group_id", "無効なサブグループID"),
    (
        "validation.sub_group_not_found",
        "1つ以上のサブグループが見つかりません",
    ),
    (
        "validation.sub_group_cannot_be_aggregate",
        "サブグループは集約グループにできません",
    ),
    (
        "validation.sub_group_channel_mismatch",
        "すべてのサブグループは同じチャンネルタイプを使用する必要があります",
    ),
    (
        "validation.sub_group_validation_endpoint_mismatch",
        "サブグループのエンドポイントが一致していません。集約グループには、リクエストの転送を成功させるため統一されたアップストリームパスが必要です",
    ),
    (
        "validation.sub_group_weight_negative",
        "サブグループの重みは負の値にできません",
    ),
    (
        "validation.sub_group_weight_max_exceeded",
        "サブグループの重みは1000を超えることはできません",
    ),
    (
        "validation.sub_group_referenced_cannot_modify",
        "このグループは {{.count}} 個の集約グループでサブグループとして参照されています。チャンネルタイプまたは検証エンドポイントは変更できません。変更前に関連する集約グループからこのグループを削除してください",
    ),
    (
        "validation.standard_group_requires_upstreams_testmodel",
        "標準グループへの変換にはアップストリームサーバーとテストモデルの提供が必要です",
    ),
    (
        "validation.aggregate_no_model_redirect",
        "集約グループはモデルリダイレクトルールをサポートしていません",
    ),
    // Not in GPT-Load: gpt-load's text.
    (
        "validation.invalid_model_redirect",
        "無効なモデルリダイレクトルール: {{.error}}",
    ),
    // Not in GPT-Load: gpt-load's text.
    (
        "validation.reorder_items_required",
        "並べ替え項目を空にすることはできません",
    ),
    // Not in GPT-Load: gpt-load's text.
    (
        "validation.reorder_group_id",
        "並べ替え項目に無効なグループIDが含まれています",
    ),
    // Not in GPT-Load: gpt-load's text.
    (
        "validation.reorder_sort_negative",
        "並び順の値は負の値にできません",
    ),
    // Not in GPT-Load: gpt-load's text.
    (
        "validation.reorder_duplicate_group",
        "並べ替え項目に重複したグループIDがあります: {{.id}}",
    ),
    // Not in GPT-Load: gpt-load's text.
    (
        "validation.reorder_group_not_found",
        "並べ替え項目に存在しないグループが含まれています",
    ),
    // Task related
    ("task.validation_started", "キー検証タスクが開始されました"),
    (
        "task.import_started",
        "キーインポートタスクが開始されました",
    ),
    ("task.delete_started", "キー削除タスクが開始されました"),
    ("task.already_running", "タスクが既に実行中です"),
    (
        "task.get_status_failed",
        "タスクステータスの取得に失敗しました",
    ),
    // Dashboard related
    ("dashboard.invalid_keys", "無効なキー"),
    ("dashboard.success_requests", "成功"),
    ("dashboard.failed_requests", "失敗"),
    (
        "dashboard.auth_key_missing",
        "AUTH_KEYが設定されていません。システムが正常に動作しません",
    ),
    (
        "dashboard.auth_key_required",
        "管理インターフェースを保護するためAUTH_KEYを設定する必要があります",
    ),
    (
        "dashboard.encryption_key_missing",
        "ENCRYPTION_KEYが設定されていません。機密データがプレーンテキストで保存されます",
    ),
    (
        "dashboard.encryption_key_recommended",
        "APIキーなどの機密データを暗号化するため、ENCRYPTION_KEYの設定を強く推奨します",
    ),
    ("dashboard.global_proxy_key", "グローバルプロキシキー"),
    ("dashboard.group_proxy_key", "グループプロキシキー"),
    (
        "dashboard.encryption_key_configured_but_data_not_encrypted",
        "ENCRYPTION_KEYは設定されていますが、データベース内のキーは暗号化されていません。これによりキーが読み取り不能になります（failed-to-decryptと表示）。",
    ),
    (
        "dashboard.encryption_key_migration_required",
        "サービスを停止し、キー移行コマンドを実行してから再起動してください",
    ),
    (
        "dashboard.data_encrypted_but_key_not_configured",
        "データベース内のキーは暗号化されていますが、ENCRYPTION_KEYが設定されていません。これによりキーが読み取り不能になります。",
    ),
    (
        "dashboard.configure_same_encryption_key",
        "暗号化時に使用した同じENCRYPTION_KEYを設定するか、復号化移行を実行してください",
    ),
    (
        "dashboard.encryption_key_mismatch",
        "設定されたENCRYPTION_KEYが暗号化時に使用されたキーと一致しません。これにより復号化が失敗します（failed-to-decryptと表示）。",
    ),
    (
        "dashboard.use_correct_encryption_key",
        "正しいENCRYPTION_KEYを使用するか、キー移行を実行してください",
    ),
    // Database related
    (
        "database.cannot_get_groups",
        "グループリストを取得できません",
    ),
    ("database.rpm_stats_failed", "RPM統計の取得に失敗しました"),
    (
        "database.current_stats_failed",
        "現在の期間統計の取得に失敗しました",
    ),
    (
        "database.previous_stats_failed",
        "前の期間統計の取得に失敗しました",
    ),
    (
        "database.chart_data_failed",
        "チャートデータの取得に失敗しました",
    ),
    (
        "database.group_stats_failed",
        "部分統計の取得に失敗しました",
    ),
    // Success messages
    (
        "success.group_deleted",
        "グループと関連キーが正常に削除されました",
    ),
    (
        "success.keys_restored",
        "{{.count}}個のキーが復元されました",
    ),
    (
        "success.invalid_keys_cleared",
        "{{.count}}個の無効なキーがクリアされました",
    ),
    (
        "success.all_keys_cleared",
        "{{.count}}個のキーがクリアされました",
    ),
    // Not in GPT-Load: gpt-load's text.
    ("success.groups_reordered", "グループの並び順を保存しました"),
    // Password security related
    (
        "security.password_too_short",
        "{{.keyType}}が短すぎます（{{.length}}文字）。少なくとも16文字を推奨します",
    ),
    (
        "security.password_short",
        "{{.keyType}}が短いです（{{.length}}文字）。32文字以上を推奨します",
    ),
    (
        "security.password_weak_pattern",
        "{{.keyType}}に一般的な弱いパスワードパターンが含まれています: {{.pattern}}",
    ),
    (
        "security.password_low_complexity",
        "{{.keyType}}の複雑性が低く、大文字/小文字、数字、特殊文字の組み合わせが不足しています",
    ),
    (
        "security.password_recommendation_16",
        "少なくとも16文字の強力なパスワードを使用してください。32文字以上を推奨します",
    ),
    (
        "security.password_recommendation_32",
        "セキュリティ向上のため32文字以上のパスワードを推奨します",
    ),
    (
        "security.password_avoid_common",
        "一般的な単語は避け、ランダムに生成された強力なパスワードの使用を推奨します",
    ),
    (
        "security.password_complexity",
        "パスワード強度を向上させるため、大文字/小文字、数字、特殊文字を含めることを推奨します",
    ),
    // Config related
    ("config.updated", "設定が正常に更新されました"),
    ("config.app_url", "アプリケーションURL"),
    (
        "config.app_url_desc",
        "アプリケーションのベースURL。グループエンドポイントアドレスの構築に使用されます。システム設定が環境変数APP_URLより優先されます。",
    ),
    ("config.proxy_keys", "グローバルプロキシキー"),
    (
        "config.proxy_keys_desc",
        "すべてのグループプロキシエンドポイントにアクセスするためのグローバルプロキシキー。複数のキーはカンマで区切ります。",
    ),
    ("config.log_retention_days", "ログ保存期間（日）"),
    (
        "config.log_retention_days_desc",
        "データベースにリクエストログを保持する日数、0でログを永久保存。",
    ),
    ("config.log_write_interval", "ログ書き込み間隔（分）"),
    (
        "config.log_write_interval_desc",
        "リクエストログをキャッシュからデータベースに書き込む間隔（分）、0でリアルタイム書き込み。",
    ),
    (
        "config.enable_request_body_logging",
        "リクエストボディログを有効化",
    ),
    (
        "config.enable_request_body_logging_desc",
        "完全なリクエストボディの内容をログに記録するかどうか。有効にするとメモリとストレージの使用量が増加します。",
    ),
    // Request settings related
    ("config.request_timeout", "リクエストタイムアウト（秒）"),
    (
        "config.request_timeout_desc",
        "転送リクエストの完全なライフサイクルタイムアウト（秒）。",
    ),
    ("config.connect_timeout", "接続タイムアウト（秒）"),
    (
        "config.connect_timeout_desc",
        "上流サービスへの新しい接続を確立するためのタイムアウト（秒）。",
    ),
    ("config.idle_conn_timeout", "アイドル接続タイムアウト（秒）"),
    (
        "config.idle_conn_timeout_desc",
        "HTTPクライアントのアイドル接続のタイムアウト（秒）。",
    ),
    (
        "config.response_header_timeout",
        "レスポンスヘッダータイムアウト（秒）",
    ),
    (
        "config.response_header_timeout_desc",
        "上流サービスからのレスポンスヘッダーを待つ最大時間（秒）。",
    ),
    ("config.max_idle_conns", "最大アイドル接続数"),
    (
        "config.max_idle_conns_desc",
        "HTTPクライアント接続プールで許可される最大アイドル接続総数。",
    ),
    (
        "config.max_idle_conns_per_host",
        "ホストごとの最大アイドル接続数",
    ),
    (
        "config.max_idle_conns_per_host_desc",
        "HTTPクライアント接続プールで各上流ホストに許可される最大アイドル接続数。",
    ),
    ("config.proxy_url", "プロキシサーバーURL"),
    (
        "config.proxy_url_desc",
        "グローバルHTTP/HTTPSプロキシサーバーURL。例：http://user:pass@host:port。空の場合は環境変数設定を使用。",
    ),
    // Key config related
    ("config.max_retries", "最大リトライ数"),
    (
        "config.max_retries_desc",
        "異なるキーを使用した単一リクエストの最大リトライ数、0でリトライなし。",
    ),
    ("config.blacklist_threshold", "ブラックリストしきい値"),
    (
        "config.blacklist_threshold_desc",
        "キーがブラックリストに入るまでの連続失敗回数、0でブラックリスト無効。",
    ),
    // Not in GPT-Load: gpt-load's text.
    (
        "config.failover_status_codes",
        "フェイルオーバーステータスコード",
    ),
    // Not in GPT-Load: gpt-load's text.
    (
        "config.failover_status_codes_desc",
        "キーの失敗として扱われ、別のキーでのリトライを発生させる上流HTTPステータスコード。カンマ区切りのコードまたは範囲で指定します（例：400-403,405-999）。その他のステータスコードはそのままクライアントに返されます。",
    ),
    ("config.key_validation_interval", "キー検証間隔（分）"),
    (
        "config.key_validation_interval_desc",
        "バックグラウンドキー検証のデフォルト間隔（分）。",
    ),
    ("config.key_validation_concurrency", "キー検証並行数"),
    (
        "config.key_validation_concurrency_desc",
        "バックグラウンドで無効なキーを検証する際の並行数。SQLiteや低性能環境では20以下を維持し、データ不整合を回避してください。",
    ),
    (
        "config.key_validation_timeout",
        "キー検証タイムアウト（秒）",
    ),
    (
        "config.key_validation_timeout_desc",
        "バックグラウンドで単一キーを検証する際のAPIリクエストタイムアウト（秒）。",
    ),
    // Category labels
    ("config.category.basic", "基本設定"),
    ("config.category.request", "リクエスト設定"),
    ("config.category.key", "キー設定"),
    // Internal error messages (for fmt.Errorf usage)
    ("error.upstreams_required", "upstreamsフィールドは必須です"),
    ("error.invalid_upstreams_format", "無効なupstreams形式"),
    (
        "error.at_least_one_upstream",
        "少なくとも1つのupstreamが必要です",
    ),
    ("error.upstream_url_empty", "upstream URLは空にできません"),
    (
        "error.upstream_weight_positive",
        "upstreamの重みは正の整数である必要があります",
    ),
    (
        "error.marshal_upstreams_failed",
        "クリーンアップされたupstreamsのシリアル化に失敗しました",
    ),
    ("error.invalid_config_format", "無効な設定形式: {{.error}}"),
    (
        "error.process_header_rules",
        "ヘッダールールの処理に失敗しました: {{.error}}",
    ),
    (
        "error.invalidate_group_cache",
        "グループキャッシュの無効化に失敗しました",
    ),
    (
        "error.unmarshal_header_rules",
        "ヘッダールールのアンマーシャルに失敗しました",
    ),
    (
        "error.delete_group_cache",
        "グループの削除に失敗: キャッシュをクリーンアップできません",
    ),
    (
        "error.decrypt_key_copy",
        "グループコピー中のキー復号化に失敗、スキップします",
    ),
    (
        "error.start_import_task",
        "グループコピー用の非同期キーインポートタスクの開始に失敗しました",
    ),
    ("error.export_logs", "ログのエクスポートに失敗しました"),
    // Login related
    ("auth.invalid_request", "無効なリクエスト形式"),
    ("auth.authentication_successful", "認証成功"),
    ("auth.authentication_failed", "認証失敗"),
    // Settings success message
    (
        "settings.update_success",
        "設定が正常に更新されました。設定はすべてのインスタンスでバックグラウンドで再読み込みされます。",
    ),
    // Sub-groups related
    (
        "success.sub_groups_added",
        "サブグループが正常に追加されました",
    ),
    (
        "success.sub_group_weight_updated",
        "サブグループの重みが正常に更新されました",
    ),
    (
        "success.sub_group_deleted",
        "サブグループが正常に削除されました",
    ),
    (
        "group.not_aggregate",
        "グループはアグリゲートグループではありません",
    ),
    (
        "group.sub_group_already_exists",
        "サブグループ{{.sub_group_id}}は既に存在します",
    ),
    ("group.sub_group_not_found", "サブグループが見つかりません"),
    // gpt-load's own additions (not in GPT-Load)
    (
        "auth.too_many_attempts",
        "ログインの失敗回数が多すぎます。{{.seconds}}秒後に再試行してください",
    ),
    (
        "validation.body_too_large",
        "リクエストボディが大きすぎます（上限 {{.limit}} バイト）",
    ),
    (
        "security.admin_key_is_proxy_key",
        "AUTH_KEY がプロキシキーとしても使われています（{{.where}}）：プロキシキーを持つ人は誰でも gpt-load を管理できます",
    ),
    (
        "security.admin_key_is_proxy_key_suggestion",
        "別のプロキシキーを使い、AUTH_KEY は管理画面専用にしてください",
    ),
    ("error.route_not_found", "見つかりません"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

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
        assert_eq!(t(Lang::EnUs, "error.route_not_found"), "Not Found");
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

    fn ids(lang: Lang) -> Vec<&'static str> {
        lang.table().iter().map(|(id, _)| *id).collect()
    }

    #[test]
    fn every_language_has_every_id() {
        let en: HashSet<_> = ids(Lang::EnUs).into_iter().collect();
        for lang in ALL {
            let list = ids(lang);
            let set: HashSet<_> = list.iter().copied().collect();
            assert_eq!(set.len(), list.len(), "duplicate id in {}", lang.code());
            let missing: Vec<_> = en.difference(&set).collect();
            assert!(missing.is_empty(), "{} lacks {missing:?}", lang.code());
            let extra: Vec<_> = set.difference(&en).collect();
            assert!(extra.is_empty(), "{} has extra {extra:?}", lang.code());
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
        for (id, en_text) in EN_US {
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
    fn emitted_ids_are_present() {
        let emitted = [
            "common.success",
            "auth.invalid_request",
            "auth.authentication_successful",
            "auth.authentication_failed",
            "task.get_status_failed",
            "validation.invalid_group_id",
            "validation.invalid_sub_group_id",
            "validation.invalid_group_name",
            "validation.invalid_channel_type",
            "validation.invalid_group_type",
            "validation.test_model_required",
            "validation.test_model_empty",
            "validation.invalid_test_path",
            "validation.invalid_upstreams",
            "validation.duplicate_header",
            "validation.aggregate_no_model_redirect",
            "validation.invalid_model_redirect",
            "validation.sub_group_referenced_cannot_modify",
            "validation.invalid_copy_keys_value",
            "error.invalid_config_format",
            "error.process_header_rules",
            "error.delete_group_cache",
            "database.group_stats_failed",
            "database.cannot_get_groups",
            "validation.reorder_items_required",
            "validation.reorder_group_id",
            "validation.reorder_sort_negative",
            "validation.reorder_duplicate_group",
            "validation.reorder_group_not_found",
            "success.groups_reordered",
            "group.not_found",
            "group.not_aggregate",
            "group.sub_group_already_exists",
            "group.sub_group_not_found",
            "validation.sub_groups_required",
            "validation.sub_group_weight_negative",
            "validation.sub_group_weight_max_exceeded",
            "validation.sub_group_not_found",
            "validation.sub_group_cannot_be_aggregate",
            "validation.sub_group_channel_mismatch",
            "validation.sub_group_validation_endpoint_mismatch",
            "success.sub_groups_added",
            "success.sub_group_weight_updated",
            "success.sub_group_deleted",
            "success.group_deleted",
            "validation.group_id_required",
            "validation.invalid_group_id_format",
            "validation.keys_text_empty",
            "validation.file_required",
            "validation.only_txt_supported",
            "validation.failed_to_open_file",
            "validation.failed_to_read_file",
            "validation.invalid_status_filter",
            "validation.invalid_status_value",
            "validation.group_not_found",
            "success.keys_restored",
            "success.invalid_keys_cleared",
            "success.all_keys_cleared",
            "error.export_logs",
            "settings.update_success",
            "dashboard.invalid_keys",
            "dashboard.success_requests",
            "dashboard.failed_requests",
            "dashboard.auth_key_missing",
            "dashboard.auth_key_required",
            "dashboard.encryption_key_missing",
            "dashboard.encryption_key_recommended",
            "dashboard.global_proxy_key",
            "dashboard.group_proxy_key",
            "dashboard.encryption_key_configured_but_data_not_encrypted",
            "dashboard.encryption_key_migration_required",
            "dashboard.data_encrypted_but_key_not_configured",
            "dashboard.configure_same_encryption_key",
            "dashboard.encryption_key_mismatch",
            "dashboard.use_correct_encryption_key",
            "security.password_too_short",
            "security.password_short",
            "security.password_weak_pattern",
            "security.password_low_complexity",
            "security.password_recommendation_16",
            "security.password_recommendation_32",
            "security.password_avoid_common",
            "security.password_complexity",
            "database.rpm_stats_failed",
            "database.current_stats_failed",
            "database.previous_stats_failed",
            "database.chart_data_failed",
            "auth.too_many_attempts",
            "validation.body_too_large",
            "error.route_not_found",
        ];
        for id in emitted {
            assert!(lookup(Lang::EnUs, id).is_some(), "missing {id}");
        }
    }

    #[test]
    fn every_setting_has_name_description_and_category() {
        let settings = [
            "app_url",
            "proxy_keys",
            "log_retention_days",
            "log_write_interval",
            "enable_request_body_logging",
            "request_timeout",
            "connect_timeout",
            "idle_conn_timeout",
            "response_header_timeout",
            "max_idle_conns",
            "max_idle_conns_per_host",
            "proxy_url",
            "max_retries",
            "blacklist_threshold",
            "failover_status_codes",
            "key_validation_interval",
            "key_validation_concurrency",
            "key_validation_timeout",
        ];
        for lang in ALL {
            for name in settings {
                let id = format!("config.{name}");
                let desc = format!("config.{name}_desc");
                assert!(lookup(lang, &id).is_some(), "missing {id}");
                assert!(lookup(lang, &desc).is_some(), "missing {desc}");
            }
        }
        assert_eq!(t(Lang::EnUs, "config.category.basic"), "Basic");
        assert_eq!(t(Lang::EnUs, "config.category.request"), "Request Settings");
        assert_eq!(t(Lang::ZhCn, "config.category.request"), "请求设置");
        assert_eq!(
            t(Lang::EnUs, "config.failover_status_codes"),
            "Failover Status Codes"
        );
        assert!(t(Lang::EnUs, "config.failover_status_codes_desc").contains("400-403,405-999"));
    }
}
