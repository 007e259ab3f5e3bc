export * from './channel-ablation';
export * from './rv-coefficient';
