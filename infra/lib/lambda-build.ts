// What `scripts/build-lambdas` built: it writes `build.json` next to the zips, and the stack
// takes the functions' architecture from there. The architecture is decided once, by the build:
// a deployment that asks for another one is refused at synth time, since Lambda would accept
// the zips and then fail every invocation with `Runtime.InvalidEntrypoint` (exec format error).
// This module reads and checks that record; it does not build anything.
import * as fs from 'node:fs';
import * as path from 'node:path';

export type LambdaArchitecture = 'arm64' | 'x86_64';

export const LAMBDA_FUNCTIONS = ['detector', 'lifecycle', 'clipper', 'announcer', 'api', 'migrate'] as const;

/** The file `scripts/build-lambdas` writes into the asset directory. */
export const BUILD_RECORD = 'build.json';

export interface LambdaBuild {
  architecture: LambdaArchitecture;
  functions: string[];
}

export function readLambdaBuild(assetDir: string): LambdaBuild {
  const file = path.join(assetDir, BUILD_RECORD);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new Error(`${file} is missing: build the functions with scripts/build-lambdas (it records the architecture it built)`);
  }
  let parsed: Partial<LambdaBuild>;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new Error(`${file} is not JSON (${(error as Error).message}): rebuild with scripts/build-lambdas`);
  }
  if (parsed.architecture !== 'arm64' && parsed.architecture !== 'x86_64') {
    throw new Error(`${file}: architecture must be arm64 or x86_64 (got ${JSON.stringify(parsed.architecture)})`);
  }
  const missing = LAMBDA_FUNCTIONS.filter((name) => !(parsed.functions ?? []).includes(name));
  if (missing.length > 0) {
    throw new Error(`${file} lists no build of ${missing.join(', ')}: rebuild with scripts/build-lambdas`);
  }
  return { architecture: parsed.architecture, functions: parsed.functions ?? [] };
}

/**
 * The architecture to deploy: the one the zips were built for. `requested` (the
 * `lambdaArchitecture` context or prop) may only confirm it.
 */
export function lambdaArchitecture(assetDir: string, requested?: string): LambdaArchitecture {
  const built = readLambdaBuild(assetDir).architecture;
  if (requested !== undefined && requested !== '' && requested !== built) {
    const rebuild = requested === 'arm64' ? 'scripts/build-lambdas --arm64' : 'scripts/build-lambdas';
    throw new Error(
      `the Lambda zips in ${assetDir} were built for ${built}, but the deployment asks for ${requested}: ` +
        `rebuild them (${rebuild}) or drop lambdaArchitecture`,
    );
  }
  return built;
}

/** Stand-in zips and their build record, for synthesis without a Rust build (tests, cost model). */
export function writeStandInAssets(dir: string, architecture: LambdaArchitecture = 'arm64'): string {
  for (const name of LAMBDA_FUNCTIONS) {
    fs.mkdirSync(path.join(dir, name), { recursive: true });
    fs.writeFileSync(path.join(dir, name, 'bootstrap.zip'), `placeholder ${name}`);
  }
  fs.writeFileSync(path.join(dir, BUILD_RECORD), JSON.stringify({ architecture, functions: LAMBDA_FUNCTIONS }));
  return dir;
}
