export { configurationWorkflow } from './configuration';
export { sweepWorkflow } from './sweep';
