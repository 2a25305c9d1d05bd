"""The display pipeline (SPEC section 3, PS3.3 C.11) on files built to order, and its windowing properties."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, convert_color_space

from medview.core.dicom import pixels as px
from medview.core.dicom.source import SourceRef
from medview.core.errors import DicomReadError
from tests.core.broken_copies import cut_short, garbage_after_preamble
from tests.factories import make_zip, write_image


def _read(path):
    return px.read_dataset(path)


def _linear_reference(x: np.ndarray, c: float, w: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 written out literally, output range 0..255, in float64."""
    x = x.astype(np.float64)
    y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255
    y = np.where(x <= c - 0.5 - (w - 1) / 2, 0.0, y)
    return np.where(x > c - 0.5 + (w - 1) / 2, 255.0, y)


# ------------------------------------------------------------------------------------------ reading


def test_read_dataset_without_preamble(tmp_path):
    pixels = np.arange(64, dtype=np.uint16).reshape(8, 8) * 50
    path = write_image(tmp_path / "acr", pixels=pixels, preamble=False, window=(1500, 3200))
    assert path.read_bytes()[128:132] != b"DICM"
    ds = _read(path)
    np.testing.assert_array_equal(px.stored_frame(ds), pixels)
    assert px.display_frame(ds).shape == (8, 8)


def test_read_dataset_from_zip_member(tmp_path):
    path = write_image(tmp_path / "src" / "a.dcm", window=(40, 400))
    archive = make_zip(tmp_path / "x.zip", [path], tmp_path / "src")
    ds = px.read_dataset(SourceRef(str(archive), "a.dcm"))
    assert px.display_frame(ds).shape == (16, 16)


@pytest.mark.parametrize(
    "content, reason",
    [(b"", "empty file"), (bytes(range(256)) * 8, "not a DICOM file"), (b"hello world\n" * 20, "not a DICOM file")],
)
def test_read_dataset_rejects_non_dicom(tmp_path, content, reason):
    path = tmp_path / "junk.dcm"
    path.write_bytes(content)
    with pytest.raises(DicomReadError, match=reason) as info:
        px.read_dataset(path)
    assert str(path) in str(info.value)


def test_read_dataset_missing_and_cut_header(tmp_path):
    with pytest.raises(DicomReadError, match="file not found"):
        px.read_dataset(tmp_path / "nope.dcm")
    path = write_image(tmp_path / "cut.dcm")
    data = path.read_bytes()
    path.write_bytes(data[:200])  # ends inside the dataset
    with pytest.raises(DicomReadError):
        px.display_frame(px.read_dataset(path))


@pytest.mark.filterwarnings("ignore:End of file reached before delimiter")  # the caller quiets pydicom
def test_read_dataset_says_where_a_file_is_cut_short(tmp_path):
    cut = cut_short(tmp_path, 3000)  # pydicom returns its header quietly, without Pixel Data
    with pytest.raises(DicomReadError) as info:
        px.read_dataset(cut)
    assert str(info.value) == f"{cut}: file is cut short (inside an element header at byte 2994; 3000 bytes)"
    archive = make_zip(tmp_path / "x.zip", [cut], tmp_path)  # the same through a zip member
    with pytest.raises(DicomReadError, match=r"x\.zip!cut\.dcm: file is cut short \(inside an element header"):
        px.read_dataset(SourceRef(str(archive), "cut.dcm"))
    with pytest.raises(DicomReadError, match="broken DICOM file"):
        px.read_dataset(garbage_after_preamble(tmp_path))
    # a whole file without pixel data (a plan, a report) still reads; only the header is read for a header
    plan = px.read_dataset(pydicom.data.get_testdata_file("rtplan.dcm"))
    assert plan.Modality == "RTPLAN"
    assert "PixelData" not in px.read_dataset(cut_short(tmp_path, 3000, "cut2.dcm"), stop_before_pixels=True)


def test_short_pixel_data_is_a_clear_error(tmp_path):
    path = write_image(tmp_path / "short.dcm", rows=32, cols=32)
    path.write_bytes(path.read_bytes()[:-300])
    ds = px.read_dataset(path)
    with pytest.raises(DicomReadError, match="shorter"):
        px.stored_frame(ds)


def test_absurd_dimensions_refused_without_allocating(tmp_path):
    path = write_image(tmp_path / "huge.dcm", extra={})
    ds = px.read_dataset(path)
    ds.Rows = ds.Columns = 60000
    with pytest.raises(DicomReadError, match="too large"):
        px.stored_frame(ds)


# ------------------------------------------------------------------------------------------ stored values


def test_signed_bits_stored_12_is_sign_extended(tmp_path):
    values = np.array([[-5, -2048], [2047, 0]], dtype=np.int16)
    raw = (values.view(np.uint16) & 0x0FFF).astype(np.uint16).view(np.int16)  # high 4 bits not sign-extended
    path = write_image(tmp_path / "s12.dcm", pixels=raw, signed=True, bits_stored=12, window=(0, 100))
    ds = _read(path)
    arr = px.stored_frame(ds)
    assert arr.dtype == np.int16
    np.testing.assert_array_equal(arr, values)


def test_unsigned_bits_stored_masks_high_bits():
    arr = np.array([0xF123, 0x0FFF], dtype=np.uint16)
    np.testing.assert_array_equal(px.mask_stored_bits(arr, 12, False), [0x0123, 0x0FFF])


def test_signed_data_in_an_unsigned_dtype_comes_back_signed():
    arr = np.array([0x0FFB, 0x7123, 0xF800], dtype=np.uint16)  # -5, 0x123 under junk bits, -2048
    out = px.mask_stored_bits(arr, 12, True)
    assert out.dtype == np.int16
    np.testing.assert_array_equal(out, [-5, 0x123, -2048])


def test_mask_is_a_no_op_when_all_bits_are_stored():
    arr = np.array([-1, 5], dtype=np.int16)
    px.mask_stored_bits(arr, 16, True)
    assert arr.tolist() == [-1, 5]


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_real_signed_file_with_unused_high_bits_set_reads_the_same_on_every_path():
    """mlut_18.dcm (pydicom-data): signed, 12 of 16 bits stored; most negative values are stored without
    their sign extension (top four bits 0) and some with it (top four bits 1). Every read path sign-extends
    from bit 11: the display pipeline, the stack loader's read at the offset, the one-frame read."""
    from pydicom.data import get_testdata_file

    from medview.core.dicom.loader import load_stack, read_native_frame
    from medview.core.dicom.model import Stack
    from medview.core.dicom.scan import scan

    path = get_testdata_file("mlut_18.dcm")
    ds = pydicom.dcmread(path)
    assert (ds.PixelRepresentation, ds.BitsStored, ds.BitsAllocated) == (1, 12, 16)
    raw = np.frombuffer(ds.PixelData, "<u2").reshape(ds.Rows, ds.Columns)
    top = raw >> 12
    assert (top == 0xF).any() and ((top == 0) & (raw & 0x800 != 0)).any()  # both kinds are in the file
    low = (raw & 0x0FFF).astype(np.int32)
    expected = np.where(low >= 0x800, low - 0x1000, low).astype(np.int16)

    np.testing.assert_array_equal(px.stored_frame(_read(path)), expected)
    (inst,) = scan([path], use_cache=False).instances
    volume = load_stack(Stack(inst.series_uid, inst.modality, "", None, [inst], [None]))
    assert not volume.errors and volume.array.dtype == np.int16
    np.testing.assert_array_equal(volume.array[0], expected)
    np.testing.assert_array_equal(read_native_frame(SourceRef(path), 0, inst), expected)
    np.testing.assert_array_equal(ds.pixel_array, expected)


def test_multiframe_frame_n(tmp_path):
    pixels = np.stack([np.full((6, 5), v, dtype=np.uint16) for v in (100, 200, 300)])
    pixels[:, 0, 0] = 0
    path = write_image(tmp_path / "mf.dcm", pixels=pixels, window=(200, 100))
    ds = _read(path)
    for i in range(3):
        np.testing.assert_array_equal(px.stored_frame(ds, i), pixels[i])
    np.testing.assert_array_equal(px.display_frame(ds, 2), px.apply_window(pixels[2].astype(np.float32),
                                                                           px.Window(200, 100)))
    assert px.display_frame(ds, 0)[1, 1] == 0 and px.display_frame(ds, 2)[1, 1] == 255
    with pytest.raises(DicomReadError, match="frame 3 does not exist"):
        px.stored_frame(ds, 3)


# ------------------------------------------------------------------------------------------ modality LUT


def test_rescale_slope_intercept(tmp_path):
    pixels = np.array([[0, 1000], [2000, 4095]], dtype=np.uint16)
    ds = _read(write_image(tmp_path / "ct.dcm", pixels=pixels, rescale=(2.5, -1024.0)))
    values = px.modality_lut(px.stored_frame(ds), ds)
    assert values.dtype == np.float32
    np.testing.assert_allclose(values, pixels * 2.5 - 1024.0)
    np.testing.assert_allclose(values, apply_modality_lut(pixels, ds))


def test_a_rescale_beyond_float32_is_ignored_and_a_huge_product_clips_without_warnings(tmp_path):
    """A damaged header's slope of 1e308 would make every value infinite: the stored values are shown
    instead. A slope float32 holds whose products it does not (1e36 x 4095) clips to white, silently."""
    import warnings

    pixels = np.array([[0, 1000], [2000, 4095]], dtype=np.uint16)
    ds = _read(write_image(tmp_path / "dx.dcm", modality="DX", pixels=pixels, rescale=(1e308, 1e308)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert px.modality_transform(ds).is_identity
        np.testing.assert_array_equal(px.modality_lut(px.stored_frame(ds), ds), pixels)
        ds.RescaleSlope, ds.RescaleIntercept = "1e36", "0"
        values = px.modality_lut(px.stored_frame(ds), ds)
        assert values[0, 0] == 0 and np.isinf(values[1, 1])
        shown = px.display_frame(ds, 0, window=px.Window(2e38, 4e38))
    assert shown[0, 0] < shown[0, 1] and shown[1, 1] == 255


def _with_modality_lut(ds: Dataset, first: int, data: list[int], bits: int = 16) -> Dataset:
    item = Dataset()
    item.LUTDescriptor = [len(data), first, bits]
    item.ModalityLUTType = "HU"
    item.LUTData = data
    item["LUTData"].VR = "US"
    ds.ModalityLUTSequence = [item]
    return ds


def test_modality_lut_sequence(tmp_path):
    pixels = np.array([[5, 10, 11], [12, 13, 20]], dtype=np.uint16)
    ds = _read(write_image(tmp_path / "mlut.dcm", pixels=pixels))
    _with_modality_lut(ds, 10, [100, 200, 300, 400])
    values = px.modality_lut(px.stored_frame(ds), ds)
    np.testing.assert_array_equal(values, [[100, 100, 200], [300, 400, 400]])
    np.testing.assert_array_equal(values, apply_modality_lut(pixels, ds))


def test_stack_modality_values_per_frame_transforms():
    stored = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    t1, t2 = px.ModalityTransform(1.0, -1000.0), px.ModalityTransform(0.5, 10.0)
    out = px.stack_modality_values(stored, [t1, t2])
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_allclose(out[0], stored[0] - 1000.0)
    np.testing.assert_allclose(out[1], stored[1] * 0.5 + 10.0)
    np.testing.assert_allclose(px.stack_modality_values(stored, t1), stored - 1000.0)


def test_enhanced_rescale_and_window_from_functional_groups(tmp_path):
    pixels = np.array([[0, 1024], [1064, 3000]], dtype=np.uint16)
    ds = _read(write_image(tmp_path / "enh.dcm", pixels=pixels))
    shared = Dataset()
    pvt, voi = Dataset(), Dataset()
    pvt.RescaleSlope, pvt.RescaleIntercept = 1.0, -1024.0
    voi.WindowCenter, voi.WindowWidth = 40.0, 80.0
    shared.PixelValueTransformationSequence = [pvt]
    shared.FrameVOILUTSequence = [voi]
    ds.SharedFunctionalGroupsSequence = [shared]
    np.testing.assert_allclose(px.modality_lut(pixels, ds), pixels - 1024.0)
    assert px.file_window(ds) == px.Window(40.0, 80.0)
    img = px.display_frame(ds)
    assert img[0, 0] == 0 and img[1, 1] == 255
    assert img[0, 1] == px.apply_window(np.float32([0]), px.Window(40, 80))[0] == 0  # 0 HU: below 40 - 40
    assert img[1, 0] == px.apply_window(np.float32([40]), px.Window(40, 80))[0] == 129


# ------------------------------------------------------------------------------------------ VOI


def test_file_window_first_of_multi_valued_and_function(tmp_path):
    ds = _read(write_image(tmp_path / "w.dcm", extra={"WindowCenter": [40, 400], "WindowWidth": [400, 2000],
                                                      "VOILUTFunction": "SIGMOID"}))
    assert px.file_window(ds) == px.Window(40.0, 400.0, "SIGMOID")
    ds.WindowWidth = [0, 2000]
    assert px.file_window(ds) is None  # width 0 is not a window (C.11.2.1.2.1)


def test_window_missing_the_image_is_still_applied(tmp_path):
    """An all-air CT slice under a brain window stays black (no per-frame fallback to a stretched window)."""
    air = np.full((4, 4), 24, dtype=np.uint16)
    air[0, 0] = 30
    ds = _read(write_image(tmp_path / "air.dcm", pixels=air, rescale=(1.0, -1024.0), window=(40, 80)))
    assert px.file_window(ds, px.modality_lut(air, ds)) == px.Window(40, 80)
    assert px.display_frame(ds).max() == 0


def test_voi_lut_sequence(tmp_path):
    pixels = np.array([[0, 1000], [2000, 4095]], dtype=np.uint16)
    ds = _read(write_image(tmp_path / "voi.dcm", pixels=pixels, bits_stored=12))
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]  # declares 16 bits, uses 12: common in practice
    item.LUTData = list(range(4095, -1, -1))  # an inverting LUT
    item["LUTData"].VR = "US"
    ds.VOILUTSequence = [item]
    assert px.file_window(ds) is None
    voi = px.display_voi(ds)
    assert isinstance(voi, px.VoiLut)
    expected = np.rint((4095.0 - pixels) * 255 / 4095)
    np.testing.assert_array_equal(px.display_frame(ds), expected)


def test_default_window_spans_the_values():
    values = np.linspace(-1000, 3000, 10_000, dtype=np.float32)
    img = px.apply_window(values, px.default_window(values))
    assert img[:40].max() == 0 and img[-40:].min() == 255 and 120 < img[5000] < 135
    flat = np.full((4, 4), 7.0, dtype=np.float32)
    assert px.apply_window(flat, px.default_window(flat)).shape == (4, 4)


def test_display_uses_default_window_without_file_window(tmp_path):
    pixels = np.arange(100, dtype=np.uint16).reshape(10, 10) * 10
    img = px.display_frame(_read(write_image(tmp_path / "nw.dcm", pixels=pixels)))
    assert img.min() == 0 and img.max() == 255


# ------------------------------------------------------------------------------------------ presentation


def test_monochrome1_and_presentation_lut_shape_invert(tmp_path):
    pixels = np.arange(256, dtype=np.uint16).reshape(16, 16) * 16
    normal = _read(write_image(tmp_path / "m2.dcm", pixels=pixels, window=(2000, 4000)))
    mono1 = _read(write_image(tmp_path / "m1.dcm", pixels=pixels, window=(2000, 4000),
                              photometric="MONOCHROME1"))
    shape = _read(write_image(tmp_path / "pls.dcm", pixels=pixels, window=(2000, 4000),
                              extra={"PresentationLUTShape": "INVERSE"}))
    base = px.display_frame(normal).astype(int)
    assert not px.is_inverted(normal) and px.is_inverted(mono1) and px.is_inverted(shape)
    np.testing.assert_array_equal(px.display_frame(mono1), 255 - base)
    np.testing.assert_array_equal(px.display_frame(shape), 255 - base)
    np.testing.assert_array_equal(px.display_frame(mono1, invert=False), base)


# ------------------------------------------------------------------------------------------ colour


def _rgb(rows=6, cols=7, seed=3):
    return np.random.default_rng(seed).integers(0, 256, (rows, cols, 3), dtype=np.uint8)


def test_rgb_planar_configuration_1(tmp_path):
    rgb = _rgb()
    path = write_image(tmp_path / "rgb.dcm", pixels=rgb, samples_per_pixel=3, planar_configuration=1,
                       bits_allocated=8)
    ds = _read(path)
    assert ds.PlanarConfiguration == 1
    np.testing.assert_array_equal(px.stored_frame(ds), rgb)
    np.testing.assert_array_equal(px.display_frame(ds), rgb)
    np.testing.assert_array_equal(px.display_frame(ds, window=px.Window(0, 1)), rgb)  # colour: not windowed
    np.testing.assert_array_equal(px.display_frame(ds, invert=True), 255 - rgb)


def test_ybr_full_shown_as_rgb(tmp_path):
    rgb = _rgb(8, 8, 5)
    ybr = convert_color_space(rgb, "RGB", "YBR_FULL")
    ds = _read(write_image(tmp_path / "ybr.dcm", pixels=ybr, samples_per_pixel=3, bits_allocated=8,
                           photometric="YBR_FULL"))
    out = px.display_frame(ds)
    assert out.shape == (8, 8, 3)
    assert np.abs(out.astype(int) - rgb).max() <= 2  # YCbCr round trip in 8 bits


def test_palette_colour(tmp_path):
    index = np.array([[0, 1], [2, 3]], dtype=np.uint8)
    ds = _read(write_image(tmp_path / "pal.dcm", pixels=index, bits_allocated=8, photometric="PALETTE COLOR"))
    red, green, blue = [0, 255, 0, 10], [0, 0, 255, 20], [0, 0, 0, 30]
    for colour, data in (("Red", red), ("Green", green), ("Blue", blue)):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [4, 0, 16])
        setattr(ds, f"{colour}PaletteColorLookupTableData",
                np.asarray(data, dtype="<u2").__mul__(257).astype("<u2").tobytes())
    out = px.display_frame(ds)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.stack([np.asarray(c)[index] for c in (red, green, blue)], axis=-1))


# ------------------------------------------------------------------------------------------ presets


def test_presets():
    assert px.preset_window("soft-tissue") == px.Window(40, 400)
    assert px.preset_window("Soft Tissue") == px.Window(40, 400)
    assert px.preset_window("LUNG") == px.Window(-600, 1500)
    assert px.preset_window("bone", "CT") == px.Window(400, 1800)
    assert [name for name, _ in px.PRESETS["CT"]] == ["soft tissue", "lung", "bone", "brain", "mediastinum"]
    with pytest.raises(KeyError, match="known: soft tissue"):
        px.preset_window("spleen-ish")


# ------------------------------------------------------------------------------------------ properties

finite = st.floats(-40_000, 40_000, allow_nan=False, width=32)
functions = st.sampled_from(["LINEAR", "LINEAR_EXACT", "SIGMOID"])


@st.composite
def windows(draw, function=functions):
    func = draw(function)
    center = draw(st.floats(-5000, 5000, allow_nan=False))
    width = draw(st.floats(1.0 if func == "LINEAR" else 0.01, 10_000, allow_nan=False))
    return px.Window(center, width, func)


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.float32, st.integers(1, 300), elements=finite), windows())
def test_apply_window_is_monotone(values, window):
    values = np.sort(values)
    out = px.apply_window(values, window)
    assert out.dtype == np.uint8
    assert np.all(np.diff(out.astype(int)) >= 0)


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.float32, st.integers(1, 300), elements=finite), windows(st.just("LINEAR")))
def test_linear_window_edges_and_formula(values, window):
    c, w = window.center, window.width
    out = px.apply_window(values, window).astype(int)
    lower, upper = c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2
    assert np.all(out[values <= lower] == 0)
    assert np.all(out[values >= upper] == 255) if w > 1 else np.all(out[values > upper] == 255)
    if w > 1:
        assert np.abs(out - _linear_reference(values, c, w)).max(initial=0) <= 1


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.float32, st.integers(1, 300), elements=finite), windows())
def test_window_levels_match_apply_window(values, window):
    if window.function == "SIGMOID":
        return  # levels are only the sigmoid's slope at the centre (documented)
    lo, hi = px.window_levels(window)
    assert hi > lo
    with np.errstate(over="ignore"):  # a 1-wide LINEAR window is a threshold: levels one ulp apart
        linear = np.clip((values.astype(np.float64) - lo) / (hi - lo) * 255, 0, 255)
    assert np.abs(px.apply_window(values, window).astype(int) - linear).max() <= 1


@st.composite
def stored_and_transform(draw):
    dtype = draw(st.sampled_from([np.int16, np.uint16, np.uint8, np.int8]))
    info = np.iinfo(dtype)
    arr = draw(hnp.arrays(dtype, st.tuples(st.integers(1, 8), st.integers(1, 8)),
                          elements=st.integers(int(info.min), int(info.max))))
    slope = draw(st.sampled_from([1.0, 0.5, 2.0, 1.3]))
    intercept = draw(st.sampled_from([0.0, -1024.0, 12.5]))
    return arr, px.ModalityTransform(slope, intercept)


@settings(max_examples=200, deadline=None)
@given(stored_and_transform(), windows(), st.booleans())
def test_lut_path_equals_float_path_and_inversion(data, window, invert):
    arr, transform = data
    lut = px.display_stored(arr, transform, window, invert, use_lut=True)
    flt = px.display_stored(arr, transform, window, invert, use_lut=False)
    np.testing.assert_array_equal(lut, flt)
    other = px.display_stored(arr, transform, window, not invert)
    np.testing.assert_array_equal(other.astype(int), 255 - lut.astype(int))


@pytest.mark.parametrize("dtype", [np.uint16, np.int16, np.uint8])
def test_a_large_frame_takes_the_table_and_shows_what_the_float_passes_show(dtype):
    """A radiograph-sized integer frame is windowed through the table by default (faster there); the grey
    levels are those of the float passes, inverted or not."""
    info = np.iinfo(dtype)
    arr = np.random.default_rng(5).integers(info.min, info.max, (1024, 700), endpoint=True).astype(dtype)
    transform = px.ModalityTransform(1.3, -1024.0)
    window = px.Window(float(arr.mean()), 1500.0)
    px._LUT_CACHE.clear()
    for invert in (False, True):
        np.testing.assert_array_equal(px.display_stored(arr, transform, window, invert),
                                      px.display_stored(arr, transform, window, invert, use_lut=False))
    assert len(px._LUT_CACHE) == 2


@pytest.mark.parametrize("shape", [(7, 5), (1100, 1001), (3, 300, 257)])
def test_lookup_in_pieces_equals_one_gather(shape):
    """`lookup` gathers a large index array in pieces (here up to 9): the same values as one np.take, for
    grey and palette tables, into a given buffer or a new one, and for an index array that is not contiguous."""
    rng = np.random.default_rng(3)
    index = rng.integers(0, 65536, shape).astype(np.uint16)
    grey = rng.integers(0, 256, 65536).astype(np.uint8)
    palette = rng.integers(0, 256, (65536, 3)).astype(np.uint8)
    np.testing.assert_array_equal(px.lookup(grey, index), np.take(grey, index))
    np.testing.assert_array_equal(px.lookup(palette, index), np.take(palette, index, axis=0))
    out = np.full(shape, 7, np.uint8)
    assert px.lookup(grey, index, out) is out
    np.testing.assert_array_equal(out, np.take(grey, index))
    strided = index[..., ::2]
    np.testing.assert_array_equal(px.lookup(grey, strided), np.take(grey, strided))


def test_lut_path_handles_modality_lut_and_voi_lut():
    transform = px.ModalityTransform(lut=np.array([0, 100, 4095], dtype=np.float32), first_mapped=-1)
    voi = px.VoiLut(data=np.arange(4096, dtype=np.float32), first_mapped=0, bits=12)
    arr = np.array([[-5, -1, 0], [1, 2, 300]], dtype=np.int16)
    np.testing.assert_array_equal(px.display_stored(arr, transform, voi, use_lut=True),
                                  px.display_stored(arr, transform, voi, use_lut=False))
    np.testing.assert_array_equal(px.display_stored(arr, transform, voi)[0], [0, 0, 6])


def test_pydicom_reads_what_tests_write(tmp_path):
    """Guard for the tests above: the factory writes what pydicom reads back unchanged."""
    pixels = np.arange(12, dtype=np.uint16).reshape(3, 4)
    ds = pydicom.dcmread(write_image(tmp_path / "g.dcm", pixels=pixels))
    np.testing.assert_array_equal(ds.pixel_array, pixels)
