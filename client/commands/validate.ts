import { loadSweepFile } from '../../core/config/experiment';

export async function validateCommand(files: string[], options: { json?: boolean }): Promise<void> {
  const configurations = [];
  for (const file of files) {
    const sweep = await loadSweepFile(file);
    for (const configuration of sweep.configurations) {
      configurations.push({
        file,
        sweep: sweep.name,
        name: configuration.name,
        dataset: configuration.dataset.kind,
        backbone: configuration.backbone.name,
      });
    }
  }
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ configurations }, null, 2)}\n`);
    return;
  }
  for (const c of configurations)
    process.stdout.write(`ok  ${c.file}  ${c.sweep}/${c.name}  ${c.dataset} x ${c.backbone}\n`);
}
