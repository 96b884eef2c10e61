"""tools/cross_validate.py: fold orchestration, pooling, resume (fast, with stand-in tools),
and one slow end-to-end run of the real tools on a tiny synthetic cohort."""
from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from mmnpc.evaluation import delong_auc_ci
from mmnpc.testing import write_synthetic_coco

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / 'tools' / 'cross_validate.py'
COLUMNS = ['patient_id', 'age', 'sex', 'clinical_stage', 'pni', 'hgb', 'treatment',
           'gtv_dose_gy', 'cisplatin_dose_mg_m2', 'chemo_cycles', 'msom', 'split']


def make_cohort(root: Path, n_patients: int, size: int = 64, slices: int = 4) -> Path:
    """A converter-like cohort (cet1 only): msom = patient number % 2, converter split train/val."""
    write_synthetic_coco(root, ('cet1',), n_patients=n_patients, slices_per_patient=slices,
                         n_val_patients=2, size=size, seed=0)
    with open(root / 'clinical.csv', 'w', newline='') as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for p in range(n_patients):
            writer.writerow({
                'patient_id': f'SYN{p:03d}', 'age': str(40 + 3 * p), 'sex': 'MF'[p % 2],
                'clinical_stage': ['II', 'III', 'IVA'][p % 3], 'pni': str(45 + p),
                'hgb': str(120 + 3 * p), 'treatment': 'IMRT+CCRT', 'gtv_dose_gy': '70',
                'cisplatin_dose_mg_m2': '100', 'chemo_cycles': str(2 + p % 2),
                'msom': str(p % 2), 'split': 'val' if p >= n_patients - 2 else 'train'})
    return root


@pytest.fixture(scope='module')
def tool():
    sys.path.insert(0, str(TOOL.parent))  # tools/cross_validate.py imports _common
    try:
        spec = importlib.util.spec_from_file_location('cross_validate_tool', TOOL)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(TOOL.parent))
    return module


# ------------------------------------------------------------------ fast: stand-in tools

def _arg(command: list[str], flag: str) -> Path:
    return Path(command[command.index(flag) + 1])


def _patients(data: Path, split: str) -> list[str]:
    coco = json.loads((data / 'cet1' / 'annotations' / f'{split}.json').read_text())
    return sorted({image['patient_id'] for image in coco['images']})


class FakeTools:
    """Stands in for train.py / test.py / test_end_to_end.py: writes the files they write."""

    def __init__(self, leak: str = '') -> None:
        self.calls: list[list[str]] = []
        self.leak = leak  # a patient the detector "trains" on besides the train split

    def __call__(self, command: list[str], log: Path) -> None:
        self.calls.append(command)
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text('fake\n')
        tool, config = command[1], command[2]
        work, data = _arg(command, '--work-dir'), _arg(command, '--data-root')
        work.mkdir(parents=True)
        labels = dict(pd.read_csv(data / 'clinical.csv', dtype=str)[['patient_id', 'msom']].values)
        rows = [{'patient_id': p, 'split': s, 'label': int(labels[p]),
                 'score': 0.3 * int(labels[p]) + (int(p[3:]) % 5) / 10}
                for s in ('train', 'test') for p in _patients(data, s)]
        if tool == 'tools/train.py':
            patients = _patients(data, 'train') + ([self.leak] if self.leak else [])
            torch.save({'meta': {'train_patient_ids': patients, 'seed': 0}}, work / 'iter_2.pth')
            (work / 'last_checkpoint').write_text(str(work / 'iter_2.pth'))
        elif tool == 'tools/test.py' and 'det_' in Path(config).name:
            (work / 'metrics.json').write_text(json.dumps(
                {'GTV_AP50': 0.5, 'GTVln_AP50': None, 'mAP50': 0.25, 'split': 'test'}))
        elif tool == 'tools/test.py':
            pd.DataFrame(rows).to_csv(work / 'patient_scores.csv', index=False)
            (work / 'metrics.json').write_text(json.dumps({'eval_split': 'test', 'cutoff': 0.5}))
        elif tool == 'tools/test_end_to_end.py':
            table = pd.DataFrame(rows).rename(columns={'score': 'contour_score'})
            table['end_to_end_score'] = table['contour_score'] * 0.9
            table.to_csv(work / 'patient_scores.csv', index=False)
            (work / 'metrics.json').write_text('{}')
        else:
            raise AssertionError(command)


@pytest.fixture
def cohort(tmp_path: Path) -> Path:
    return make_cohort(tmp_path / 'data', 12, size=16, slices=2)


def _args(cohort: Path, work: Path, *extra: str) -> list[str]:
    return [str(cohort), '--det-config', str(REPO / 'configs/det_cet1_tiny.py'),
            '--cls-config', str(REPO / 'configs/msom_fusion_tiny.py'), '--work-dir', str(work),
            '--folds', '3', '--repeats', '2', '--seed', '5', '--det-iters', '2', *extra]


def test_pools_every_fold_then_resume_redoes_only_what_is_missing(tool, cohort, tmp_path,
                                                                   monkeypatch, capsys):
    fake = FakeTools()
    monkeypatch.setattr(tool, 'run_step', fake)
    work = tmp_path / 'cv'
    assert tool.main(_args(cohort, work, '--end-to-end')) == 0
    assert len(fake.calls) == 6 * 5  # 3 folds x 2 repeats x 5 steps
    det_train = fake.calls[0]
    assert det_train[1] == 'tools/train.py' and 'param_scheduler.1.milestones=[2]' in det_train
    assert _arg(fake.calls[2], '--det-checkpoint') == work / 'repeat0_fold0' / 'det' / 'iter_2.pth'

    folds = pd.read_csv(work / 'folds.csv', dtype={'patient_id': str})
    assert (folds[folds['split'] == 'test'].groupby('repeat')['patient_id'].nunique() == 12).all()
    scores = pd.read_csv(work / 'fold_patient_scores.csv', dtype={'patient_id': str})
    assert list(scores.columns) == ['repeat', 'fold', 'patient_id', 'split', 'label', 'score',
                                    'end_to_end_score']
    merged = scores.merge(folds, on=['repeat', 'fold', 'patient_id'], suffixes=('', '_fold'))
    assert len(merged) == len(scores) and (merged['split'] == merged['split_fold']).all()
    summary = json.loads((work / 'cv_summary.json').read_text())
    assert len(summary['folds']) == 6 and len(summary['commands']) == 30
    assert summary['folds'][4]['val_split_seed'] == 5 + 1 * 3 + 1
    assert summary['folds'][0]['detector_test'] == {'GTV_AP50': 0.5, 'GTVln_AP50': None,
                                                    'mAP50': 0.25}
    for entry in summary['pooled']:
        test = scores[(scores['repeat'] == entry['repeat']) & (scores['split'] == 'test')]
        for column in ('score', 'end_to_end_score'):
            assert entry[column]['auc'] == pytest.approx(
                delong_auc_ci(test[column], test['label']).auc)
    assert 'mixes models' in summary['pooling_note']
    assert 'pooled AUC' in capsys.readouterr().out

    fake.calls.clear()  # everything exists: nothing runs again
    assert tool.main(_args(cohort, work, '--end-to-end', '--resume')) == 0
    assert fake.calls == []
    assert capsys.readouterr().out.count('finished earlier, skipped') == 6
    (work / 'repeat1_fold2' / 'cls_test' / 'patient_scores.csv').unlink()
    assert tool.main(_args(cohort, work, '--end-to-end', '--resume')) == 0
    assert [(c[1], _arg(c, '--work-dir').parent.name) for c in fake.calls] == [
        ('tools/test.py', 'repeat1_fold2'), ('tools/test_end_to_end.py', 'repeat1_fold2')]
    # an interrupted detector training (checkpoint there, but the tool never finished)
    fake.calls.clear()
    (work / 'repeat0_fold0' / 'det' / 'cv_step_done').unlink()
    assert tool.main(_args(cohort, work, '--end-to-end', '--resume')) == 0
    assert [_arg(c, '--work-dir').name for c in fake.calls] == [
        'det', 'det_test', 'cls', 'cls_test', 'e2e']  # it and everything after it


def test_refuses_to_overwrite_or_resume_with_other_settings(tool, cohort, tmp_path, monkeypatch):
    monkeypatch.setattr(tool, 'run_step', FakeTools())
    work = tmp_path / 'cv'
    assert tool.main(_args(cohort, work, '--folds-only')) == 0
    assert not (work / 'cv_summary.json').exists()
    assert (work / 'repeat1_fold2' / 'data' / 'cet1' / 'annotations' / 'test.json').is_file()
    with pytest.raises(SystemExit, match='pass --resume'):
        tool.main(_args(cohort, work))
    with pytest.raises(SystemExit, match="seed: 5 -> 6"):
        tool.main(_args(cohort, work, '--resume', '--seed', '6'))


def test_a_detector_trained_on_other_patients_stops_the_run(tool, cohort, tmp_path, monkeypatch,
                                                           capsys):
    fake = FakeTools(leak='OUTSIDER')
    monkeypatch.setattr(tool, 'run_step', fake)
    assert tool.main(_args(cohort, tmp_path / 'cv')) == 1
    assert len(fake.calls) == 1
    assert 'outside the training split' in capsys.readouterr().err


def test_too_small_cohort_is_refused(tool, cohort, tmp_path):
    with pytest.raises(SystemExit, match='at least k = 7'):
        tool.main(_args(cohort, tmp_path / 'cv', '--folds', '7'))


# ------------------------------------------------------------------ slow: the real tools

SMALL = {  # 64 px everywhere (the tiny configs resize to 256)
    '--det-cfg-options': ['train_dataloader.dataset.pipeline.2.scale=(64,64)',
                          'val_dataloader.dataset.pipeline.1.scale=(64,64)',
                          'test_dataloader.dataset.pipeline.1.scale=(64,64)'],
    '--cls-cfg-options': [f'{loader}.dataset.pipeline.1.scale=(64,64)'
                          for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')],
}


def _run_tool(cohort: Path, work: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(TOOL), str(cohort), '--folds', '2', '--repeats', '1',
               '--seed', '0', '--det-config', 'configs/det_cet1_tiny.py',
               '--cls-config', 'configs/msom_fusion_tiny.py', '--work-dir', str(work),
               '--det-iters', '2', '--cls-iters', '2', *extra]
    for flag, options in SMALL.items():
        command += [flag, *options]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f'{result.stdout[-3000:]}\n{result.stderr[-3000:]}'
    return result


@pytest.mark.slow  # ~1.5-2 min on 2 CPU cores: 8 tool runs of ResNet-50 models
def test_cross_validation_end_to_end_with_the_real_tools(tmp_path):
    cohort = make_cohort(tmp_path / 'data', 8, slices=2)  # 4 with MSOM: 2 folds of 4 test patients
    work = tmp_path / 'cv'
    result = _run_tool(cohort, work, '--end-to-end')
    assert '[cv] repeat 0 fold 1 (2/2)' in result.stdout

    folds = pd.read_csv(work / 'folds.csv', dtype={'patient_id': str})
    scores = pd.read_csv(work / 'fold_patient_scores.csv', dtype={'patient_id': str})
    summary = json.loads((work / 'cv_summary.json').read_text())
    test = scores[scores['split'] == 'test']
    assert sorted(test['patient_id']) == sorted(folds['patient_id'].unique())  # each once
    for fold in (0, 1):
        assignment = folds[folds['fold'] == fold]
        train = sorted(assignment.loc[assignment['split'] == 'train', 'patient_id'])
        record = summary['folds'][fold]
        for key in ('detector_checkpoint', 'classifier_checkpoint'):
            meta = torch.load(record[key], map_location='cpu', weights_only=False)['meta']
            assert meta['train_patient_ids'] == train, key
        assert Path(record['detector_checkpoint']).parent == work / f'repeat0_fold{fold}' / 'det'
        assert record['classifier_test']['eval_split'] == 'test'
        assert set(record['detector_test']) == {'GTV_AP50', 'GTVln_AP50', 'mAP50'}
        fold_test = test[test['fold'] == fold]
        assert sorted(fold_test['patient_id']) == sorted(
            assignment.loc[assignment['split'] == 'test', 'patient_id'])
        assert record['score']['auc'] == pytest.approx(
            delong_auc_ci(fold_test['score'], fold_test['label']).auc)
    pooled = delong_auc_ci(test['score'], test['label'])
    assert summary['pooled'][0]['score']['auc'] == pytest.approx(pooled.auc)
    assert len(summary['commands']) == 10
    assert 'end_to_end_score' in scores  # detector-chosen slices, as tools/predict.py

    again = tmp_path / 'again'  # same seed -> same folds (the assignment only)
    _run_tool(cohort, again, '--folds-only')
    assert (again / 'folds.csv').read_text() == (work / 'folds.csv').read_text()
    resumed = _run_tool(cohort, work, '--end-to-end', '--resume')  # nothing left to do
    assert resumed.stdout.count('finished earlier, skipped') == 2
