"""No DICOM identifier reaches any output, log or message of ``python -m data_prep convert``.

Identifiers are planted with data_prep.testing.phi (names, IDs, birth and
study/series/acquisition dates, accession number, institution; UIDs are
looked for too) and searched in every file written, file names included, and
in stdout/stderr of a successful run (with a skipped patient) and of a failed
one.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from data_prep.convert import staging_dir
from data_prep.testing.phi import (
    DATE_KEYWORDS,
    TEXT_KEYWORDS,
    find_identifiers,
    identifier_forms,
    plant_identifiers,
    planted_values,
)

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'data_prep', *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope='module')
def planted(tmp_path_factory) -> tuple[Path, list[str]]:
    """3 synthetic patients with planted identifiers; NPC001 has a truncated MR file."""
    from data_prep.synth import synthesize_cohort

    cohort = synthesize_cohort(tmp_path_factory.mktemp('phi') / 'cohort', 3, seed=1, matrix=48,
                               pixel_mm=4.8, n_slices=6, slice_mm=6.0, progress=False)
    identifiers = plant_identifiers(cohort)
    broken = sorted(p for p in (cohort / 'NPC001').rglob('*') if p.is_file()
                    and p.suffix != '.txt')[0]
    broken.write_bytes(broken.read_bytes()[:600])  # cut inside the patient module
    return cohort, identifiers


def test_planted_identifiers_are_in_the_cohort_and_found_there(planted):
    cohort, identifiers = planted
    for index in range(3):
        assert set(planted_values(index).values()) <= set(identifiers)
    assert sum(1 for i in identifiers if i.count('.') > 5) > 20  # UIDs
    found = {hit.identifier for hit in find_identifiers([cohort], identifiers)}
    expected = {planted_values(i)[k] for i in range(3) for k in (*TEXT_KEYWORDS, *DATE_KEYWORDS)}
    assert expected <= found
    assert 'patient_name' in (cohort / 'clinical.csv').read_text()


def test_identifier_forms_cover_reformatted_dates_and_names():
    assert '2003-02-11' in identifier_forms('20030211')
    assert '11.02.2003' in identifier_forms('20030211')
    assert {'phidoe janeq00 x', 'phidoe', 'janeq00'} <= set(identifier_forms('PHIDOE^JANEQ00^X'))
    hits = find_identifiers([], ['20030211', 'PHIDOE^JANEQ00^X'],
                            texts={'log': 'study of 2003-02-11 for Phidoe, JaneQ00'})
    assert sorted(hit.form for hit in hits) == ['2003-02-11', 'janeq00', 'phidoe',
                                                'phidoe, janeq00']


def test_no_identifier_in_outputs_logs_or_messages(planted, tmp_path):
    cohort, identifiers = planted
    failed_out = tmp_path / 'failed'
    failed = run_cli('-v', 'convert', cohort, failed_out, '--no-progress')
    assert failed.returncode == 1
    assert '\nerror: patient NPC001: ' in failed.stderr and 'Traceback' not in failed.stderr
    assert not failed_out.exists()

    out = tmp_path / 'data'
    result = run_cli('-v', 'convert', cohort, out, '--skip-bad-patients', '--val-fraction', '0.5',
                     '--no-progress')
    assert result.returncode == 0, result.stderr
    assert 'skipping patient NPC001: patient NPC001: ' in result.stderr
    assert 'SKIPPED 1 patients' in result.stdout and 'NPC001' in result.stdout
    manifest = json.loads((out / 'manifest.json').read_text())
    assert list(manifest['skipped']) == ['NPC001'] and sorted(manifest['patients']) == [
        'NPC002', 'NPC003']
    assert "'hospital_number', 'patient_name'" in result.stderr or (
        "'patient_name', 'hospital_number'" in result.stderr)  # dropped columns are named

    written = [out, staging_dir(failed_out)]
    assert sum(1 for p in out.rglob('*.jpg')) > 20 and staging_dir(failed_out).is_dir()
    texts = {'failed stdout': failed.stdout, 'failed stderr': failed.stderr,
             'stdout': result.stdout, 'stderr': result.stderr}
    assert find_identifiers(written, identifiers, texts=texts) == []


def test_uids_are_found_inside_longer_number_runs(tmp_path):
    uid = '1.2.840.99999.1234567'
    leaked = tmp_path / 'out.json'
    leaked.write_bytes(b'{"ref": "7.' + uid.encode() + b'.8", "z": -87.1}')
    clean = tmp_path / 'clean.json'
    clean.write_bytes(b'{"ref": "1.2.840.99999.123456", "z": 1.2840999991234567}')
    hits = find_identifiers([leaked, clean], [uid])
    assert [(h.source, h.form) for h in hits] == [(str(leaked), uid)]


def test_embedded_files_are_decoded_not_searched_as_base64_text(tmp_path):
    import base64
    name = 'PHIPERFORMER^PAULA'
    chance = b'QUJDpaulAxyz'  # valid base64 whose text, not content, holds 'paula'
    assert b'paula' not in base64.b64decode(chance).lower()
    plot = tmp_path / 'report.html'
    plot.write_bytes(b'<img src="data:image/png;base64,' + chance + b'">')
    assert find_identifiers([plot], [name]) == []
    leaked = tmp_path / 'leaked.html'
    payload = base64.b64encode(b'\x89PNG tEXt Author Paula ...')
    leaked.write_bytes(b'<img src="data:image/png;base64,' + payload + b'">')
    assert [h.form for h in find_identifiers([leaked], [name])] == ['paula']
