import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { loadSweepFile } from '../core/config/experiment';
import { repoRoot } from '../infra/paths';

// Docker and Kubernetes are not available here: these checks read the files and compare them with the CLI.

const ROOT = repoRoot();
const DEPLOY = path.join(ROOT, 'infra', 'deploy');
const K8S = path.join(DEPLOY, 'k8s');
const IMAGE = 'infodisent/worker';
const DATA_DIR = '/var/lib/infodisent/datasets';
const CLI = path.join(ROOT, 'dist', 'client', 'main.js');

// biome-ignore lint/suspicious/noExplicitAny: parsed YAML is walked structurally
type Yaml = any;

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) return yamlFiles(file);
    return /\.ya?ml$/.test(entry.name) ? [file] : [];
  });
}

function load(file: string): Yaml[] {
  const documents = parseAllDocuments(readFileSync(file, 'utf8'), { merge: true });
  return documents.map((document) => {
    assert.deepEqual(
      document.errors.map((e) => e.message),
      [],
      `${path.relative(ROOT, file)} is valid YAML`,
    );
    return document.toJS();
  });
}

const manifests = () =>
  yamlFiles(K8S)
    .filter((f) => path.basename(f) !== 'kustomization.yaml')
    .flatMap(load);
const compose = () => load(path.join(DEPLOY, 'docker-compose.yml'))[0];
const ofKind = (kind: string) => manifests().filter((m) => m.kind === kind);
const byName = (kind: string, name: string) => ofKind(kind).find((m) => m.metadata.name === name);

interface CliOption {
  takesValue: boolean;
  choices?: string[];
  env?: string;
}

const helps = new Map<string, string | undefined>();

/** `infodisent <command> --help`: its text, or undefined where there is no such command. */
function helpOf(command: string[]): string | undefined {
  const key = command.join(' ');
  if (!helps.has(key)) {
    const { status, stdout } = spawnSync(process.execPath, [CLI, ...command, '--help'], { encoding: 'utf8' });
    helps.set(key, status === 0 ? stdout : undefined);
  }
  return helps.get(key);
}

/** `infodisent <command> --help`, parsed: each option, whether it takes a value, its choices and variable. */
function cliOptions(...command: string[]): Map<string, CliOption> {
  const help = helpOf(command);
  assert.ok(help !== undefined, `'infodisent ${command.join(' ')}' is a command`);
  const options = new Map<string, CliOption>();
  // One entry per option: its line and the wrapped lines under it.
  for (const entry of help.split(/\n(?= {2}-)/).slice(1)) {
    const text = entry.replace(/\s+/g, ' ');
    const match = /^ (?:-\w, )?(--[a-z0-9-]+)( <[^>]+>)?/.exec(text);
    if (!match) continue;
    const choices = /choices: ((?:"[^"]+"(?:, )?)+)/.exec(text)?.[1];
    const env = /env: ([A-Z0-9_]+)/.exec(text)?.[1];
    options.set(match[1]!, {
      takesValue: Boolean(match[2]),
      ...(choices ? { choices: [...choices.matchAll(/"([^"]+)"/g)].map((m) => m[1]!) } : {}),
      ...(env ? { env } : {}),
    });
  }
  return options;
}

/** Checks a worker command line against the CLI's options and returns its flags and values. */
function parseWorkerArgs(
  args: string[],
  options: Map<string, CliOption>,
  where: string,
): Map<string, string> {
  assert.equal(args[0], 'worker', `${where} runs the worker command`);
  const flags = new Map<string, string>();
  for (let i = 1; i < args.length; i++) {
    const flag = args[i]!;
    const option = options.get(flag);
    assert.ok(option, `${where}: '${flag}' is an option of 'infodisent worker'`);
    const value = option.takesValue ? args[++i] : 'true';
    assert.ok(value !== undefined && !value.startsWith('--'), `${where}: ${flag} has a value`);
    if (option.choices)
      assert.ok(option.choices.includes(value), `${where}: ${flag} ${value} is one of its choices`);
    flags.set(flag, value);
  }
  return flags;
}

interface WorkerSpec {
  where: string;
  args: string[];
  env: Yaml;
  dataMount?: string;
  /** Where the container sees read-only volumes: the user's datasets and backbone files. */
  readOnlyMounts: string[];
  gpus: number;
}

/** Every container that runs the worker image, in the manifests and in the compose file. */
function workers(): WorkerSpec[] {
  const config = byName('ConfigMap', 'infodisent-config').data;
  const fromK8s = ofKind('Deployment').flatMap((deployment: Yaml) =>
    deployment.spec.template.spec.containers
      .filter((c: Yaml) => c.image.startsWith(`${IMAGE}:`))
      .map(
        (c: Yaml): WorkerSpec => ({
          where: `k8s ${deployment.metadata.name}`,
          args: c.args,
          env: {
            ...(c.envFrom?.some((e: Yaml) => e.configMapRef?.name === 'infodisent-config') ? config : {}),
            ...Object.fromEntries((c.env ?? []).map((e: Yaml) => [e.name, e.value ?? 'from a secret'])),
          },
          dataMount: c.volumeMounts?.find((m: Yaml) => m.name === 'datasets')?.mountPath,
          readOnlyMounts: (c.volumeMounts ?? [])
            .filter((m: Yaml) => m.readOnly)
            .map((m: Yaml) => m.mountPath),
          gpus: Number(c.resources?.limits?.['nvidia.com/gpu'] ?? 0),
        }),
      ),
  );
  const services = Object.entries<Yaml>(compose().services).filter(([, s]) =>
    s.image?.startsWith(`${IMAGE}:`),
  );
  const fromCompose = services.map(
    ([name, s]): WorkerSpec => ({
      where: `compose ${name}`,
      args: s.command,
      env: s.environment,
      dataMount: s.volumes?.find((v: string) => v.startsWith('datasets:'))?.split(':')[1],
      readOnlyMounts: (s.volumes ?? [])
        .filter((v: string) => v.endsWith(':ro'))
        .map((v: string) => v.split(':').at(-2)),
      gpus: (s.deploy?.resources?.reservations?.devices ?? [])
        .filter((d: Yaml) => d.capabilities?.includes('gpu'))
        .reduce((sum: number, d: Yaml) => sum + d.count, 0),
    }),
  );
  return [...fromK8s, ...fromCompose];
}

test('every YAML file parses, and every manifest is a named Kubernetes object in the kustomization', () => {
  const files = yamlFiles(DEPLOY);
  assert.ok(files.length >= 8, `found ${files.length} YAML files`);
  for (const file of files) load(file);
  for (const manifest of manifests()) {
    assert.ok(
      manifest.apiVersion && manifest.kind && manifest.metadata?.name,
      JSON.stringify(manifest).slice(0, 80),
    );
  }
  const kustomization = load(path.join(K8S, 'kustomization.yaml'))[0];
  const listed = [...kustomization.resources].sort();
  const present = readdirSync(K8S)
    .filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
    .sort();
  assert.deepEqual(listed, present, 'the kustomization applies every manifest');
  assert.deepEqual(
    kustomization.images.map((i: Yaml) => i.name),
    [IMAGE],
  );
});

test('secrets: every key the manifests read is in secrets.env.example, and services share them', () => {
  const generator = load(path.join(K8S, 'kustomization.yaml'))[0].secretGenerator;
  assert.deepEqual(generator, [{ name: 'infodisent-secrets', envs: ['secrets.env'] }]);
  const example = readFileSync(path.join(K8S, 'secrets.env.example'), 'utf8');
  const keys = new Set([...example.matchAll(/^([A-Z0-9_]+)=/gm)].map((m) => m[1]));
  const references: { container: string; variable: string; key: string }[] = [];
  for (const manifest of manifests()) {
    for (const container of manifest.spec?.template?.spec?.containers ?? []) {
      for (const variable of container.env ?? []) {
        const ref = variable.valueFrom?.secretKeyRef;
        if (!ref) continue;
        assert.equal(ref.name, 'infodisent-secrets', `${container.name}: ${variable.name}`);
        assert.ok(keys.has(ref.key), `secrets.env.example has ${ref.key}`);
        references.push({ container: container.name, variable: variable.name, key: ref.key });
      }
    }
  }
  const keyOf = (container: string, variable: string) =>
    references.find((r) => r.container === container && r.variable === variable)?.key;
  assert.equal(keyOf('temporal', 'POSTGRES_PWD'), keyOf('postgresql', 'POSTGRES_PASSWORD'));
  for (const variable of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']) {
    assert.equal(
      keyOf('worker', variable),
      keyOf('seaweedfs', variable),
      `workers and SeaweedFS share ${variable}`,
    );
  }
  // Compose: the same variables feed both sides.
  const services = compose().services;
  assert.equal(services.temporal.environment.POSTGRES_PWD, services.postgresql.environment.POSTGRES_PASSWORD);
  for (const variable of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']) {
    assert.equal(services['worker-gpu'].environment[variable], services.seaweedfs.environment[variable]);
  }
});

test('worker command lines use only real CLI flags; GPU workers get one GPU, CPU workers none', () => {
  const options = cliOptions('worker');
  assert.ok(options.get('--backend')?.choices?.includes('webgpu'), 'the help lists the backend choices');
  const specs = workers();
  assert.deepEqual(
    specs.map((s) => s.where),
    ['k8s infodisent-worker-gpu', 'k8s infodisent-worker-cpu', 'compose worker-cpu', 'compose worker-gpu'],
  );
  for (const spec of specs) {
    const flags = parseWorkerArgs(spec.args, options, spec.where);
    if (flags.get('--queues') === 'gpu') {
      assert.equal(flags.get('--backend'), 'webgpu', spec.where);
      assert.equal(flags.get('--gpu-concurrency'), '1', spec.where);
      assert.equal(spec.gpus, 1, `${spec.where} has one GPU`);
    } else {
      assert.equal(flags.get('--queues'), 'cpu', spec.where);
      assert.equal(spec.gpus, 0, `${spec.where} has no GPU`);
    }
    assert.equal(flags.get('--data-dir'), DATA_DIR, spec.where);
    assert.equal(spec.dataMount, DATA_DIR, `${spec.where} mounts the shared dataset volume at --data-dir`);
    // Variables the CLI reads must be spelled as its help says.
    const known = new Set([...options.values()].map((o) => o.env).filter(Boolean));
    for (const name of Object.keys(spec.env).filter((n) => /^(TEMPORAL|INFODISENT)_/.test(n))) {
      assert.ok(known.has(name), `${spec.where}: ${name} is read by 'infodisent worker'`);
    }
    for (const name of [
      'TEMPORAL_ADDRESS',
      'TEMPORAL_NAMESPACE',
      'INFODISENT_STORE',
      'AWS_ENDPOINT_URL_S3',
    ]) {
      assert.ok(spec.env[name], `${spec.where} sets ${name}`);
    }
  }
  const gpu = byName('Deployment', 'infodisent-worker-gpu').spec.template.spec;
  assert.ok(
    gpu.tolerations.some((t: Yaml) => t.key === 'nvidia.com/gpu'),
    'GPU pods tolerate GPU node taints',
  );
});

test("every worker sees the paper sweep's datasets and backbone files, read-only", async () => {
  const sweep = await loadSweepFile(path.join(ROOT, 'experiments', 'paper.json'));
  const paths = sweep.configurations.flatMap((c) => [
    ...('root' in c.dataset ? [c.dataset.root] : []),
    ...(c.backbone.file ? [c.backbone.file] : []),
  ]);
  assert.ok(paths.length >= 28, `found ${paths.length} dataset roots and backbone files`);
  for (const spec of workers()) {
    for (const file of paths) {
      assert.ok(
        spec.readOnlyMounts.some((mount) => file.startsWith(`${mount}/`)),
        `${spec.where}: ${file} is under a read-only mount (${spec.readOnlyMounts.join(', ') || 'none'})`,
      );
    }
  }
});

/** The `infodisent ...` lines of the guide's shell blocks, continuations joined and comments cut, as words. */
function guideCommands(): string[][] {
  const readme = readFileSync(path.join(DEPLOY, 'README.md'), 'utf8');
  return [...readme.matchAll(/```sh\n([\s\S]*?)```/g)]
    .flatMap((block) => block[1]!.replace(/\\\n\s*/g, ' ').split('\n'))
    .map((line) => line.replace(/\s+#\s.*$/, '').trim())
    .filter((line) => line.startsWith('infodisent '))
    .map((line) => (line.match(/"[^"]*"|'[^']*'|\S+/g) ?? []).slice(1));
}

test("the guide's infodisent commands name real commands and options", () => {
  const commands = guideCommands();
  assert.ok(commands.length >= 10, `found ${commands.length} commands`);
  for (const args of commands) {
    const where = `infodisent ${args.join(' ')}`;
    // A group ('sweep', 'schedule') takes its subcommand as the second word.
    const command = helpOf(args.slice(0, 1))?.includes('\nCommands:') ? args.slice(0, 2) : args.slice(0, 1);
    const options = cliOptions(...command);
    for (let i = command.length; i < args.length; i++) {
      if (!args[i]!.startsWith('--')) continue;
      const option = options.get(args[i]!);
      assert.ok(option, `${where}: '${args[i]}' is an option of 'infodisent ${command.join(' ')}'`);
      if (option.takesValue) assert.ok(args[++i] !== undefined, `${where}: ${args[i - 1]} has a value`);
    }
  }
});

test('images, addresses and ports agree between the files', () => {
  const services = compose().services;
  const specs = workers();
  const k8sEnv = specs.find((s) => s.where.startsWith('k8s'))!.env;
  const composeEnv = specs.find((s) => s.where.startsWith('compose'))!.env;

  // One image, tagged as in the kustomization and built from this Dockerfile.
  const tag = load(path.join(K8S, 'kustomization.yaml'))[0].images[0].newTag;
  const images = new Set([
    ...manifests().flatMap((m) =>
      (m.spec?.template?.spec?.containers ?? [])
        .map((c: Yaml) => c.image)
        .filter((i: string) => i.startsWith(IMAGE)),
    ),
    ...Object.values<Yaml>(services)
      .map((s) => s.image)
      .filter((i) => i?.startsWith(IMAGE)),
  ]);
  assert.deepEqual([...images], [`${IMAGE}:${tag}`]);
  const build = services['worker-gpu'].build;
  const context = path.resolve(DEPLOY, build.context);
  assert.equal(context, ROOT);
  const dockerfile = readFileSync(path.join(context, build.dockerfile), 'utf8');
  assert.match(dockerfile, /^ENTRYPOINT \["node", "dist\/client\/main\.js"\]$/m);
  for (const [, operands] of dockerfile.matchAll(/^COPY (?!--from)(.+)$/gm)) {
    for (const source of operands!.split(/\s+/).slice(0, -1)) {
      assert.ok(existsSync(path.join(ROOT, source)), `the Dockerfile copies ${source}, which exists`);
    }
  }
  const readme = readFileSync(path.join(DEPLOY, 'README.md'), 'utf8');
  assert.ok(readme.includes(`${IMAGE}:${tag}`), 'the guide names the image');
  for (const [, file] of readme.matchAll(/`(k8s\/[a-z.-]+|docker-compose\.yml|Dockerfile)`/g)) {
    assert.ok(existsSync(path.join(DEPLOY, file!)), `the guide's ${file} exists`);
  }

  // Kubernetes: each address the workers and the UI use names a Service with that port.
  const uiEnv = Object.fromEntries(
    byName('Deployment', 'temporal-ui').spec.template.spec.containers[0].env.map((e: Yaml) => [
      e.name,
      e.value,
    ]),
  );
  const servicePort = (host: string, port: number) =>
    byName('Service', host)?.spec.ports.some((p: Yaml) => p.port === port);
  for (const address of [k8sEnv.TEMPORAL_ADDRESS, uiEnv.TEMPORAL_ADDRESS]) {
    const [host, port] = address.split(':');
    assert.ok(servicePort(host, Number(port)), `a Service ${host} serves port ${port}`);
  }
  const s3 = new URL(k8sEnv.AWS_ENDPOINT_URL_S3);
  assert.ok(servicePort(s3.hostname, Number(s3.port)), `a Service ${s3.hostname} serves port ${s3.port}`);
  const seaweed = byName('StatefulSet', 'seaweedfs').spec.template.spec.containers[0].args.join(' ');
  assert.match(seaweed, new RegExp(`-s3\\.port=${s3.port}\\b`));
  const temporalEnv = Object.fromEntries(
    byName('Deployment', 'temporal').spec.template.spec.containers[0].env.map((e: Yaml) => [e.name, e.value]),
  );
  assert.ok(
    servicePort(temporalEnv.POSTGRES_SEEDS, Number(temporalEnv.DB_PORT)),
    'Temporal finds PostgreSQL',
  );

  // Compose: the same addresses name services that listen there.
  assert.equal(composeEnv.TEMPORAL_ADDRESS, k8sEnv.TEMPORAL_ADDRESS);
  assert.equal(services['temporal-ui'].environment.TEMPORAL_ADDRESS, composeEnv.TEMPORAL_ADDRESS);
  assert.equal(composeEnv.AWS_ENDPOINT_URL_S3, k8sEnv.AWS_ENDPOINT_URL_S3);
  assert.equal(composeEnv.INFODISENT_STORE, k8sEnv.INFODISENT_STORE);
  const published = (service: string) =>
    (services[service].ports ?? []).map((p: string) => Number(String(p).split(':').pop()));
  assert.ok(published('temporal').includes(Number(composeEnv.TEMPORAL_ADDRESS.split(':')[1])));
  assert.ok(published('seaweedfs').includes(Number(s3.port)));
  assert.match(services.seaweedfs.command.join(' '), new RegExp(`-s3\\.port=${s3.port}\\b`));
  assert.equal(services.temporal.environment.POSTGRES_SEEDS, 'postgresql');
  assert.ok(services.postgresql, 'compose has the postgresql service Temporal uses');
  for (const [name, service] of Object.entries<Yaml>(services)) {
    const image = service.image ?? '';
    assert.match(image, /:[\w.]+$/, `compose ${name} pins its image tag`);
  }
});
