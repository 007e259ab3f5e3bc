export * from './explain-model';
export * from './explanation';
export * from './faithfulness';
export * from './maps';
export * from './models';
export * from './prototypes';
