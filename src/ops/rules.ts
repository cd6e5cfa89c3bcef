/** The complete rule table. Built on first use because the family files import each other's ops. */
import type { Prim, PrimAttrs, Rule, RuleTable } from './prim.js';
import { elementwiseRules } from './elementwise.js';
import { reduceRules } from './reduce.js';
import { movementRules } from './movement.js';
import { linalgRules } from './linalg.js';
import { convRules } from './conv.js';
import { nnRules } from './nn.js';
import { attentionRules } from './attention.js';
import { tokenShuffleRules } from './token_shuffle.js';

let table: RuleTable<Prim> | undefined;

export function ruleFor<P extends Prim>(prim: P): Rule<PrimAttrs[P]> {
  table ??= { ...elementwiseRules, ...reduceRules, ...movementRules, ...linalgRules, ...convRules, ...nnRules, ...attentionRules, ...tokenShuffleRules };
  return table[prim] as Rule<PrimAttrs[P]>;
}

export function allPrims(): Prim[] {
  ruleFor('add');
  return Object.keys(table!) as Prim[];
}
