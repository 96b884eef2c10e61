"""Compressed and other transfer syntaxes, as hospitals export MR series.

A tiny synthetic patient (one T2 series, 4 slices of 32 x 32 px, values up to
4000 so that both bytes of the 16-bit samples matter) is written uncompressed
by the project's writer, then every MR file is re-encoded into one transfer
syntax. For the lossless syntaxes the decoded pixels must equal the
uncompressed ones, and a full conversion must give byte-identical JPEGs, COCO
files and clinical.csv.

Encoded here, then decoded and compared (encode -> decode):
* Implicit VR Little Endian, Explicit VR Big Endian, Deflated Explicit VR
  Little Endian (re-saved by pydicom);
* RLE Lossless (pydicom's own encoder), JPEG-LS Lossless (pyjpegls), JPEG 2000
  Lossless (pylibjpeg-openjpeg);
* JPEG Lossless, Non-Hierarchical, First-Order Prediction (process 14, SV1),
  the usual compressed MR syntax: no Python library encodes it, so this file
  holds a small encoder (``jpeg_lossless_sv1``) written from ITU-T T.81 H;
  the decoder is pylibjpeg-libjpeg;
* JPEG-LS Near Lossless (lossy, error <= 2): decoded within the bound.

Only checked for an available decoder plugin (no encoder here, and MR is not
stored 8-bit lossy in practice): JPEG Baseline (process 1), JPEG Extended
(processes 2 & 4), JPEG Lossless process 14 (selectable predictor), JPEG 2000
(lossy), HTJ2K. pydicom's own JPEG samples of those are decoded too.

A syntax that cannot be decoded stops the conversion with a DataPrepError that
names the patient, the file and the syntax.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom import uid
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder

from data_prep import convert
from data_prep.clinical import CLINICAL_COLUMNS
from data_prep.dicom_writer import PatientHeader, ellipse_contour, write_mr_series, write_rtstruct
from data_prep.options import PrepOptions
from data_prep.patient import prepare_patient
from data_prep.types import DataPrepError

PID = 'NPC001'
SHAPE = (4, 32, 32)  # slices, rows, columns (JPEG 2000 needs >= 32 px for its 6 levels)
SPACING = (2.0, 2.0, 4.0)
ORIGIN = (-31.0, -31.0, -6.0)
OPTIONS = PrepOptions(output_size=64, sequences=('t2',))

RESAVED = [uid.ImplicitVRLittleEndian, uid.ExplicitVRBigEndian,
           uid.DeflatedExplicitVRLittleEndian]
COMPRESSED = [uid.RLELossless, uid.JPEGLSLossless, uid.JPEG2000Lossless, uid.JPEGLosslessSV1]
LOSSLESS = RESAVED + COMPRESSED
PRIVATE_SYNTAX = '1.2.826.0.1.3680043.9.7433.99.1'  # made up, not a DICOM standard syntax
DECODE_ONLY = [uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit, uid.JPEGLossless,
               uid.JPEG2000, uid.HTJ2KLossless, uid.HTJ2K]


def write_cohort(cohort: Path) -> list[Path]:
    """clinical.csv + one tiny patient (t2 + RTSTRUCT); returns the MR files."""
    rng = np.random.default_rng(0)
    volume = rng.integers(0, 3000, SHAPE).astype(float)
    volume[1:3, 10:18, 10:22] += 1000  # the 'tumour'
    series = write_mr_series(cohort / PID / 't2', volume, spacing=SPACING, origin=ORIGIN,
                             description='T2_TSE_TRA', patient=PatientHeader(), rng=rng)
    contours = [ellipse_contour(np.asarray(ORIGIN) + np.asarray(SPACING) * (16, 14, k),
                                (8.0, 6.0), 24) for k in (1, 2)]
    write_rtstruct(cohort / PID / 'RS_t2.dcm', series, {'GTV': contours},
                   patient=PatientHeader(), rng=rng)
    table = pd.DataFrame([{'patient_id': PID, 'age': '50', 'msom': '0'}])
    table.reindex(columns=CLINICAL_COLUMNS).to_csv(cohort / 'clinical.csv', index=False)
    return series.files


@pytest.fixture(scope='module')
def plain(tmp_path_factory) -> tuple[Path, list[Path], dict[str, bytes]]:
    """The uncompressed cohort, its MR files and the bytes of its conversion."""
    root = tmp_path_factory.mktemp('plain')
    files = write_cohort(root / 'cohort')
    expected = converted_bytes(root / 'cohort', root / 'out')
    assert any(name.endswith('.jpg') for name in expected) and 't2/annotations/train.json' in expected
    return root / 'cohort', files, expected


def converted_bytes(cohort: Path, out: Path) -> dict[str, bytes]:
    """Every output file but the manifest (it records input file sizes).

    One patient cannot be split at random: a split file puts it in 'train'.
    """
    split_file = out.parent / 'split.csv'
    split_file.write_text(f'patient_id,split\n{PID},train\n')
    convert.convert_cohort(cohort, out, split_file=split_file, options=OPTIONS, progress=False)
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob('*'))
            if p.is_file() and p.name != 'manifest.json'}


def reencode(path: Path, syntax: str, **kwargs) -> None:
    """Rewrite one MR file in ``syntax``."""
    ds = pydicom.dcmread(path)
    if syntax in RESAVED:
        if syntax == uid.ExplicitVRBigEndian:  # pydicom writes pixel bytes as they are
            ds.PixelData = ds.pixel_array.astype('>u2').tobytes()
        ds.file_meta.TransferSyntaxUID = syntax
        pydicom.dcmwrite(path, ds, implicit_vr=syntax.is_implicit_VR,
                         little_endian=syntax.is_little_endian, force_encoding=True)
        return
    if syntax == uid.JPEGLosslessSV1:
        frame = jpeg_lossless_sv1(ds.pixel_array)
        ds.PixelData = encapsulate([frame])
        ds['PixelData'].VR = 'OB'
        ds['PixelData'].is_undefined_length = True
        ds.file_meta.TransferSyntaxUID = syntax
    else:
        ds.compress(syntax, **kwargs)
    ds.save_as(path, enforce_file_format=True)


def jpeg_lossless_sv1(frame: np.ndarray) -> bytes:
    """A 16-bit grey frame as a JPEG Lossless process 14 SV1 codestream (ITU-T T.81 H).

    Prediction: 2^15 for the first sample, the left neighbour along the first row,
    the one above down the first column, else the left one (selection value 1).
    One Huffman table gives every difference category 0-16 a 5-bit code.
    """
    rows, cols = frame.shape
    x = frame.astype(np.int64)
    predicted = np.empty_like(x)
    predicted[0, 0] = 1 << 15
    predicted[0, 1:] = x[0, :-1]
    predicted[1:, 0] = x[:-1, 0]
    predicted[1:, 1:] = x[1:, :-1]
    differences = (x - predicted) % 65536
    differences[differences > 32768] -= 65536  # -32767 .. 32768
    bits = []
    for diff in differences.ravel().tolist():
        category = abs(diff).bit_length()
        bits.append(format(category, '05b'))  # canonical code of category c: c, 5 bits
        if 0 < category < 16:
            extra = diff if diff > 0 else diff + (1 << category) - 1
            bits.append(format(extra, f'0{category}b'))
    stream = ''.join(bits)
    stream += '1' * (-len(stream) % 8)  # pad with 1-bits
    data = bytearray()
    for byte in int(stream, 2).to_bytes(len(stream) // 8, 'big'):
        data.append(byte)
        if byte == 0xFF:
            data.append(0x00)  # byte stuffing
    counts = bytes([0, 0, 0, 0, 17] + [0] * 11)  # 17 codes of length 5
    return b''.join([
        b'\xff\xd8',  # SOI
        b'\xff\xc3' + (11).to_bytes(2, 'big') + bytes([16]) + rows.to_bytes(2, 'big')
        + cols.to_bytes(2, 'big') + bytes([1, 1, 0x11, 0]),  # SOF3: 16 bit, 1 component
        b'\xff\xc4' + (2 + 1 + 16 + 17).to_bytes(2, 'big') + bytes([0x00]) + counts
        + bytes(range(17)),  # DHT: DC table 0
        b'\xff\xda' + (8).to_bytes(2, 'big') + bytes([1, 1, 0x00, 1, 0, 0]),  # SOS: Ss=1 (SV1)
        bytes(data),
        b'\xff\xd9',  # EOI
    ])


@pytest.mark.parametrize('syntax', LOSSLESS, ids=lambda s: s.keyword)
def test_lossless_syntax_decodes_to_the_same_pixels_and_conversion(plain, tmp_path, syntax):
    cohort, files, expected = plain
    copy = tmp_path / 'cohort'
    shutil.copytree(cohort, copy)
    for path in files:
        target = copy / path.relative_to(cohort)
        reencode(target, syntax)
        ds = pydicom.dcmread(target)
        assert ds.file_meta.TransferSyntaxUID == syntax
        assert target.read_bytes() != path.read_bytes()
        np.testing.assert_array_equal(ds.pixel_array, pydicom.dcmread(path).pixel_array)
    assert converted_bytes(copy, tmp_path / 'out') == expected


def test_near_lossless_jpeg_ls_stays_within_its_error_bound(plain, tmp_path):
    cohort, files, _ = plain
    copy = tmp_path / 'cohort'
    shutil.copytree(cohort, copy)
    for path in files:
        reencode(copy / path.relative_to(cohort), uid.JPEGLSNearLossless, jls_error=2)
    volume = prepare_patient(copy / PID, PID, OPTIONS)['t2']
    assert volume.slices
    for path in files:
        decoded = pydicom.dcmread(copy / path.relative_to(cohort)).pixel_array.astype(int)
        assert np.abs(decoded - pydicom.dcmread(path).pixel_array).max() <= 2


@pytest.mark.parametrize('syntax', LOSSLESS + DECODE_ONLY + [uid.JPEGLSNearLossless],
                         ids=lambda s: s.keyword)
def test_a_decoder_plugin_is_installed(syntax):
    """Syntaxes not encoded here are covered by this check only (see the module doc)."""
    assert get_decoder(syntax).is_available, f'no decoder installed for {syntax.name}'


@pytest.mark.parametrize('name, syntax', [('SC_rgb_jpeg_dcmtk.dcm', uid.JPEGBaseline8Bit),
                                          ('JPGExtended.dcm', uid.JPEGExtended12Bit),
                                          ('JPEG2000.dcm', uid.JPEG2000)])
def test_jpeg_samples_written_by_others_decode(name, syntax):
    ds = pydicom.dcmread(get_testdata_file(name))
    assert ds.file_meta.TransferSyntaxUID == syntax
    assert ds.pixel_array.shape[:2] == (ds.Rows, ds.Columns)


@pytest.mark.parametrize('case', ['unknown syntax', 'decoder not installed'])
def test_undecodable_syntax_names_patient_file_and_syntax(plain, tmp_path, monkeypatch, case):
    cohort, files, _ = plain
    copy = tmp_path / 'cohort'
    shutil.copytree(cohort, copy)
    target = copy / files[2].relative_to(cohort)
    name = target.relative_to(copy / PID).as_posix()
    if case == 'unknown syntax':
        ds = pydicom.dcmread(target)
        ds.file_meta.TransferSyntaxUID = PRIVATE_SYNTAX  # a vendor's own compression
        pydicom.dcmwrite(target, ds, implicit_vr=False, little_endian=True)
        expected = (rf"patient {PID}: cannot decode the pixels of file {name}, transfer syntax "
                    rf"'unknown' \({re.escape(PRIVATE_SYNTAX)}\): not a transfer syntax "
                    "pydicom can decode; re-export")
    else:
        reencode(target, uid.JPEGLSLossless)
        decoder = get_decoder(uid.JPEGLSLossless)
        monkeypatch.setattr(decoder, '_available', {})  # as if no plugin were installed
        expected = (rf"patient {PID}: cannot decode the pixels of file {name}, transfer syntax "
                    r"'JPEG-LS Lossless Image Compression' \(1\.2\.840\.10008\.1\.2\.4\.80\): "
                    'no decoder for it is installed')
    with pytest.raises(DataPrepError, match=expected):
        prepare_patient(copy / PID, PID, OPTIONS)


def test_the_test_jpeg_lossless_encoder_covers_the_whole_16_bit_range():
    """Differences of every size (0, +-1, ..., 32768, wrap-around) decode exactly."""
    from libjpeg import decode  # pylibjpeg-libjpeg, the plugin pydicom uses for SV1
    frame = np.random.default_rng(3).integers(0, 65536, (9, 11)).astype(np.uint16)
    frame[0, :6] = [0, 65535, 0, 32768, 0, 1]
    frame[1:, 0] = 32768 - np.arange(8) ** 5 % 32768
    np.testing.assert_array_equal(decode(jpeg_lossless_sv1(frame)), frame)
