"""U-Net and Attention U-Net: parameter counts, shapes, attention maps, size errors, determinism."""
import pytest
import torch

from aunet import AttentionUNet, UNet, count_parameters
from aunet.gate import ALPHA_INIT
from aunet.unet import Level, level_wiring


@pytest.mark.parametrize("make,expected", [
    (lambda: UNet(), 5_888_004),  # the reference U-Net with deep supervision
    (lambda: UNet(num_classes=2), 5_887_466),
    (lambda: AttentionUNet(gates_per_level=1, gating_channels=256), 6_214_151),
    (lambda: AttentionUNet(gates_per_level=2, gating_channels=256), 6_473_322),  # released code
    (lambda: AttentionUNet(gating="bottleneck", gating_channels=128), 6_411_498),  # earlier variant
])
def test_reference_parameter_counts(make, expected):
    assert count_parameters(make()) == expected


def test_default_attention_unet_within_half_percent_of_paper():
    n = count_parameters(AttentionUNet())
    assert abs(n - 6.40e6) / 6.40e6 < 0.005, n


@pytest.mark.parametrize("size", [(16, 16, 16), (32, 16, 48), (48, 32, 16)])
def test_3d_shapes_and_attention(size):
    torch.manual_seed(0)
    model = AttentionUNet(filters=(4, 8, 16, 32, 64)).eval()
    x = torch.randn(2, 1, *size)
    logits, attention = model(x, return_attention=True)
    assert logits.shape == (2, 4, *size)
    assert list(attention) == ["level2", "level3", "level4"]
    for level, alpha in attention.items():
        factor = 2 ** (int(level[-1]) - 1)
        assert alpha.shape == (2, 1, *(s // factor for s in size))
        assert torch.all(alpha == ALPHA_INIT)  # uniform at initialisation, whatever the input


def test_2d_models_and_options():
    x = torch.randn(1, 3, 32, 64)
    for model in (UNet(in_channels=3, num_classes=2, dim=2, deep_supervision=False),
                  AttentionUNet(in_channels=3, num_classes=2, dim=2, gates_per_level=1, filters=(4, 8, 16, 32, 64))):
        logits, attention = model.eval()(x, return_attention=True)
        assert logits.shape == (1, 2, 32, 64)
    assert attention["level2"].shape == (1, 1, 16, 32)
    assert UNet().eval()(torch.randn(1, 1, 16, 16, 16)).shape == (1, 4, 16, 16, 16)  # plain logits by default


@pytest.mark.parametrize("model", [UNet(filters=(2, 4, 8, 16, 32)), AttentionUNet(filters=(2, 4, 8, 16, 32))])
def test_size_error_names_shape_and_valid_sizes(model):
    with pytest.raises(ValueError) as err:
        model(torch.randn(1, 1, 30, 32, 40))
    message = str(err.value)
    assert "(30, 32, 40)" in message and "(32, 32, 32)" in message and "(32, 32, 48)" in message


def test_same_seed_same_output():
    def run():
        torch.manual_seed(123)
        model = AttentionUNet(filters=(4, 8, 16, 32, 64))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = torch.randn(1, 1, 16, 16, 32)
        for _ in range(2):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
        return model.eval()(x, return_attention=True)

    (a, att_a), (b, att_b) = run(), run()
    assert torch.equal(a, b)
    assert all(torch.equal(att_a[k], att_b[k]) for k in att_a)
    assert att_a["level2"].std() > 0  # after training, alpha is no longer uniform


@pytest.mark.parametrize("dim,size", [(3, (16, 32, 16)), (2, (32, 48))])
def test_fused_deep_supervision_is_the_papers_fusion(dim, size):
    """head() composes the fusion conv into each level's 1x1 conv; it must equal final(cat(up(dsv_l(d_l))))."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    model = UNet(dim=dim, filters=(4, 8, 16, 32, 64)).eval()
    for p in model.parameters():  # random biases too, so a dropped bias term would show
        torch.nn.init.normal_(p, std=0.5)
    decoded = [torch.randn(2, c, *(s // 2 ** l for s in size)) for l, c in enumerate(model.filters[:4])]
    mode = "trilinear" if dim == 3 else "bilinear"
    upsampled = [F.interpolate(dsv(d), size=size, mode=mode, align_corners=False) if l else dsv(d)
                 for l, (dsv, d) in enumerate(zip(model.dsv, decoded))]
    expected = model.final(torch.cat(upsampled, dim=1))
    torch.testing.assert_close(model.head(decoded), expected, rtol=1e-4, atol=1e-4)


def test_level_wiring_is_what_the_model_builds():
    """Levels are numbered 1-4 as in the paper; the gates sit where level_wiring says, with its F_g."""
    assert level_wiring() == [Level(1, 16, None, 0), Level(2, 32, "decoder", 64), Level(3, 64, "decoder", 128),
                              Level(4, 128, "bottleneck", 128)]
    assert [l.gated_by for l in level_wiring(gating="bottleneck", gating_channels=256)] == [
        None, "bottleneck", "bottleneck", "bottleneck"]
    assert level_wiring()[2].describe() == "decoder output, level 4 (128 ch)"
    for model in (AttentionUNet(), AttentionUNet(gating="bottleneck", gates_per_level=1, gating_channels=64)):
        gated = [level for level in model.wiring if level.gated_by]
        assert list(model.gates) == [level.name for level in gated] == ["level2", "level3", "level4"]
        for level in gated:
            for gate in model.gates[level.name].gates:
                assert (gate.W_x.in_channels, gate.W_g.in_channels) == (level.channels, level.gating_channels)
    with pytest.raises(ValueError, match="gating='encoder'"):
        AttentionUNet(gating="encoder")
