// drizzle-kit pull of the extension's public schema `tenancy` into ./out (run.sh empties it
// first; app.ts and tsconfig.json read the pulled files from there).
import { defineConfig } from "drizzle-kit";

const url = process.env.DATABASE_URL;
if (!url) {
  throw new Error("DATABASE_URL is not set (a connection string of the database's owner)");
}

export default defineConfig({
  dialect: "postgresql",
  dbCredentials: { url },
  schemaFilter: ["tenancy"],
  out: "./out",
});
