// A tenant's backend on Drizzle + node-postgres, as README.md "A tenant's backend with an API key"
// describes it: a login role that is a member of `authenticated` turns the API key it received into
// the transaction's tenant context with tenancy.authenticate($1), then reads through Drizzle's query
// builder; RLS does the rest.  The tables come from `drizzle-kit pull` (./out), unedited.
//
// Env: APP_URL (the login role's connection string), API_KEY (a tk_live_... key).
// Prints, one per line, tab-separated:
//   without-key <rows seen outside a transaction with a key>
//   tenant <the tenant id authenticate() returned>
//   project <tenant_id> <id> <name>          (every row the transaction sees, by name)
//   request-logs <tenant_id> <count>         (per tenant, through request_logs.ts)
//   after-commit <rows seen once the transaction is over>
//   ok
import { asc, count, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/node-postgres";
import { Pool } from "pg";
import * as relations from "./out/relations";
import * as schema from "./out/schema";
import { requestLogs } from "./request_logs";

const projects = schema.projectsInTenancy;
type Project = typeof projects.$inferSelect;

function env(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set`);
  }
  return value;
}

async function main(): Promise<void> {
  // One connection: the context must not leak from one transaction to the next on it.
  const pool = new Pool({ connectionString: env("APP_URL"), max: 1 });
  // The pulled relations are passed too, so that they load (db.query is built from them).
  const db = drizzle(pool, { schema: { ...schema, ...relations } });
  try {
    const before = await db.select().from(projects);
    console.log(`without-key\t${before.length}`);

    // The context is the transaction's: authenticate and read in the same one.
    const [seen, logs] = await db.transaction(async (tx) => {
      const auth = await tx.execute<{ tenant_id: string | null }>(
        sql`SELECT tenancy.authenticate(${env("API_KEY")}) AS tenant_id`,
      );
      const tenant = auth.rows[0]?.tenant_id;
      if (!tenant) {
        throw new Error("tenancy.authenticate returned no tenant");
      }
      console.log(`tenant\t${tenant}`);
      const rows: Project[] = await tx.select().from(projects).orderBy(asc(projects.name), asc(projects.id));
      const perTenant = await tx
        .select({ tenantId: requestLogs.tenantId, n: count() })
        .from(requestLogs)
        .groupBy(requestLogs.tenantId);
      return [rows, perTenant] as const;
    });
    for (const p of seen) {
      // Typed from the pulled schema: tenantId, id and name are strings, description may be null.
      const description: string | null = p.description;
      void description;
      console.log(`project\t${p.tenantId}\t${p.id}\t${p.name}`);
    }

    for (const l of logs) {
      console.log(`request-logs\t${l.tenantId}\t${l.n}`);
    }

    const after = await db.select().from(projects);
    console.log(`after-commit\t${after.length}`);
    console.log("ok");
  } finally {
    await pool.end();
  }
}

main().catch((e: unknown) => {
  console.error("app.ts:", e);
  process.exit(1);
});
