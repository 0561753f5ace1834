-- GPT-Load's schema exactly as GORM AutoMigrate lays it out on PostgreSQL. IF NOT EXISTS: an
-- existing GPT-Load database is adopted as is.
CREATE TABLE IF NOT EXISTS "system_settings" ("id" bigserial,"setting_key" varchar(255) NOT NULL,"setting_value" text NOT NULL,"description" varchar(512),"created_at" timestamptz,"updated_at" timestamptz,PRIMARY KEY ("id"),CONSTRAINT "uni_system_settings_setting_key" UNIQUE ("setting_key"));

CREATE TABLE IF NOT EXISTS "groups" ("id" bigserial,"name" varchar(255) NOT NULL,"display_name" varchar(255),"proxy_keys" text,"description" varchar(512),"group_type" varchar(50) DEFAULT 'standard',"upstreams" JSONB NOT NULL,"validation_endpoint" varchar(255),"channel_type" varchar(50) NOT NULL,"sort" bigint DEFAULT 0,"test_model" varchar(255) NOT NULL,"param_overrides" JSONB,"config" JSONB,"header_rules" JSONB,"model_redirect_rules" JSONB,"model_redirect_strict" boolean DEFAULT false,"last_validated_at" timestamptz,"created_at" timestamptz,"updated_at" timestamptz,PRIMARY KEY ("id"),CONSTRAINT "uni_groups_name" UNIQUE ("name"));

CREATE TABLE IF NOT EXISTS "group_sub_groups" ("id" bigserial,"group_id" bigint NOT NULL,"sub_group_id" bigint NOT NULL,"weight" bigint DEFAULT 0,"created_at" timestamptz,"updated_at" timestamptz,PRIMARY KEY ("id"));
CREATE UNIQUE INDEX IF NOT EXISTS "idx_group_sub" ON "group_sub_groups" ("group_id","sub_group_id");

CREATE TABLE IF NOT EXISTS "api_keys" ("id" bigserial,"key_value" text NOT NULL,"key_hash" varchar(128),"group_id" bigint NOT NULL,"status" varchar(50) NOT NULL DEFAULT 'active',"notes" varchar(255) DEFAULT '',"request_count" bigint NOT NULL DEFAULT 0,"failure_count" bigint NOT NULL DEFAULT 0,"last_used_at" timestamptz,"created_at" timestamptz,"updated_at" timestamptz,PRIMARY KEY ("id"),CONSTRAINT "fk_groups_api_keys" FOREIGN KEY ("group_id") REFERENCES "groups"("id"));
CREATE INDEX IF NOT EXISTS "idx_api_keys_key_hash" ON "api_keys" ("key_hash");
CREATE INDEX IF NOT EXISTS "idx_api_keys_group_id" ON "api_keys" ("group_id");
CREATE INDEX IF NOT EXISTS "idx_api_keys_status" ON "api_keys" ("status");
CREATE INDEX IF NOT EXISTS "idx_api_keys_group_last_used_id" ON "api_keys" ("group_id","last_used_at","id");

CREATE TABLE IF NOT EXISTS "request_logs" ("id" varchar(36),"timestamp" timestamptz NOT NULL,"group_id" bigint NOT NULL,"group_name" varchar(255),"parent_group_id" bigint,"parent_group_name" varchar(255),"key_value" text,"key_hash" varchar(128),"model" varchar(255),"is_success" boolean NOT NULL,"source_ip" varchar(64),"status_code" bigint NOT NULL,"request_path" varchar(500),"duration" bigint NOT NULL,"error_message" text,"user_agent" varchar(512),"request_type" varchar(20) NOT NULL DEFAULT 'final',"upstream_addr" varchar(500),"is_stream" boolean NOT NULL,"request_body" text,PRIMARY KEY ("id"));
CREATE INDEX IF NOT EXISTS "idx_request_logs_timestamp" ON "request_logs" ("timestamp");
CREATE INDEX IF NOT EXISTS "idx_request_logs_group_id" ON "request_logs" ("group_id");
CREATE INDEX IF NOT EXISTS "idx_request_logs_group_name" ON "request_logs" ("group_name");
CREATE INDEX IF NOT EXISTS "idx_request_logs_parent_group_id" ON "request_logs" ("parent_group_id");
CREATE INDEX IF NOT EXISTS "idx_request_logs_parent_group_name" ON "request_logs" ("parent_group_name");
CREATE INDEX IF NOT EXISTS "idx_request_logs_key_hash" ON "request_logs" ("key_hash");
CREATE INDEX IF NOT EXISTS "idx_request_logs_model" ON "request_logs" ("model");
CREATE INDEX IF NOT EXISTS "idx_request_logs_request_type" ON "request_logs" ("request_type");

CREATE TABLE IF NOT EXISTS "group_hourly_stats" ("id" bigserial,"time" timestamptz NOT NULL,"group_id" bigint NOT NULL,"success_count" bigint NOT NULL DEFAULT 0,"failure_count" bigint NOT NULL DEFAULT 0,"created_at" timestamptz,"updated_at" timestamptz,PRIMARY KEY ("id"));
CREATE UNIQUE INDEX IF NOT EXISTS "idx_group_time" ON "group_hourly_stats" ("time","group_id");
