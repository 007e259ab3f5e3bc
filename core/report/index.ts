export * from './classes';
export * from './explanation-figure';
export * from './figures';
export * from './html';
export * from './summary';
export * from './svg';
export * from './table-formats';
export * from './tables';
