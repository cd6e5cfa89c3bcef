/** Adversarial robustness: FGSM/PGD attacks in pixel space and robust-accuracy evaluation. */
export * from './attack_model.js';
export * from './attacks.js';
export * from './evaluate.js';
