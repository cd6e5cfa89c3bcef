/** The training objectives `train --method` knows; a new objective is its file plus one line here. */
import { registerObjective } from './objective.js';
import { SupervisedObjective, lossOptionsOf } from './supervised.js';
import { AdversarialObjective } from './adversarial.js';
import { MaeObjective } from './mae.js';
import { DinoObjective } from './dino.js';
import { DynamicVitObjective } from './dynamicvit.js';
import { ClipObjective } from './clip.js';

registerObjective('supervised', (ctx) => new SupervisedObjective(lossOptionsOf(ctx)));
registerObjective('adversarial', (ctx) => AdversarialObjective.create(ctx));
registerObjective('mae', (ctx) => MaeObjective.create(ctx));
registerObjective('dino', (ctx) => DinoObjective.create(ctx));
registerObjective('dynamicvit', (ctx) => DynamicVitObjective.create(ctx));
registerObjective('clip', (ctx) => ClipObjective.create(ctx));

export { createObjective, listObjectives, registerObjective, type Objective, type ObjectiveContext, type ObjectiveEvaluation, type EvaluationContext, type ObjectiveFactory } from './objective.js';
export { SupervisedObjective } from './supervised.js';
export { AdversarialObjective } from './adversarial.js';
