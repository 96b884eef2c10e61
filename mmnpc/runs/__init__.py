"""Run folders and the steps that fill them (issue 32's run-folder contract).

* :mod:`.run_folder` -- what a training / test folder holds and how to read it:
  the file names (``metrics.json``, ``patient_scores.csv``, ``deployment.json``),
  the last and the validation-selected ("best") checkpoint, the folder's lock;
* :mod:`.steps` -- one way to run a tool as a step of a longer job (demo,
  cross-validation, experiments), its output echoed or logged, a failure raised
  with the command and the log's last lines;
* :mod:`.schedule` -- one way to change an iteration-based config's length, the
  validation and checkpoint intervals and the LR milestones following it.
"""
from .run_folder import (DEPLOYMENT_FILE, LAST_CHECKPOINT_FILE, METRICS_FILE,
                         PATIENT_SCORES_FILE, RunFolder, RunFolderError)
from .schedule import iteration_overrides, last_checkpoint_options, no_in_training_validation
from .steps import StepFailed, run_tool

__all__ = ['DEPLOYMENT_FILE', 'LAST_CHECKPOINT_FILE', 'METRICS_FILE', 'PATIENT_SCORES_FILE',
           'RunFolder', 'RunFolderError', 'iteration_overrides', 'last_checkpoint_options',
           'no_in_training_validation',
           'StepFailed', 'run_tool']
