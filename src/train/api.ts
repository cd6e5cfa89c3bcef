/** Training and evaluation: the trainer, its configuration schema, optimisers and schedules. */
export { train, evaluate, clipGlobalNorm, TrainingDivergedError, type TrainOptions, type TrainResult, type TrainEvents, type StepInfo } from './trainer.js';
export { trainConfigSchema, trainDefaults, resolveTrainConfig, readConfigFile, ConfigError, type TrainConfig } from './config.js';
export { openTrainData, type TrainData } from './data.js';
export { AdversarialTrainer } from './adversarial.js';
export { ModelEma } from './ema.js';
export { summarize, type ClassificationSummary } from './metrics.js';
export { AdamW, SGD, paramSpecs, type Optimizer, type ParamSpec } from '../optim/adamw.js';
export { makeSchedule, type Schedule, type ScheduleConfig } from '../optim/schedule.js';
