// tenancy.request_logs, by hand: drizzle-kit pull does not read partitioned tables (it reads
// ordinary tables, views and materialized views), and request_logs is partitioned by day.  This is
// the definition docs/request-logs.md gives; app.ts reads through it, so the test type-checks and
// runs it against the real table.  Rows are written by tenancy.log_request() only: select.
import { pgSchema, uuid, integer, jsonb, timestamp } from "drizzle-orm/pg-core";

const tenancy = pgSchema("tenancy");

export const requestLogs = tenancy.table("request_logs", {
  tenantId: uuid("tenant_id").notNull(),
  id: uuid().notNull(),
  integrationId: uuid("integration_id").notNull(),
  actionId: uuid("action_id").notNull(),
  apiKeyId: uuid("api_key_id"),
  requestSummary: jsonb("request_summary").notNull(),
  responseSummary: jsonb("response_summary"),
  statusCode: integer("status_code"),
  latencyMs: integer("latency_ms").notNull(),
  retryCount: integer("retry_count").notNull(),
  error: jsonb(),
  createdAt: timestamp("created_at", { withTimezone: true, mode: "string" }).notNull(),
});
