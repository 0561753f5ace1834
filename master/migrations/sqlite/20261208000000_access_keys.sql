-- gpt-load's own table (GPT-Load 1.x neither reads nor creates it, so a database stays usable by
-- GPT-Load 1.x): access keys for the model-routed native endpoints. `key_value` is the key as the
-- key cipher stores it (ciphertext with ENCRYPTION_KEY), `key_hash` the cipher's hash, unique.
-- `filters`, `allowed_ips` and `limits` are JSON text.
CREATE TABLE IF NOT EXISTS `access_keys` (`id` integer PRIMARY KEY AUTOINCREMENT,`name` varchar(255) NOT NULL,`key_value` text NOT NULL,`key_hash` varchar(128) NOT NULL,`status` varchar(50) NOT NULL DEFAULT "active",`filters` text,`expires_at` datetime,`allowed_ips` text,`limits` text,`request_count` integer NOT NULL DEFAULT 0,`last_used_at` datetime,`created_at` datetime,`updated_at` datetime,CONSTRAINT `uni_access_keys_key_hash` UNIQUE (`key_hash`));
