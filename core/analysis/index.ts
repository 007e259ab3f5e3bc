export * from './channel-ablation';
export * from './rv-coefficient';
export * from './significance';
