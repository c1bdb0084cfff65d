"""minivivit.flops: hand-counted multiply-adds of a tiny config per variant, and the paper's own numbers
(Table 2 for ViViT-B, Sec. 4.2 for ViViT-L) within the 0.3-1% of elementwise work XLA adds. < 1 s."""

import pytest

from minivivit import ViViTConfig, flops

TINY = dict(image_size=(8, 16), num_frames=6, tubelet_size=(2, 4, 4), hidden_size=16, num_hidden_layers=2,
            num_attention_heads=4, intermediate_size=24, num_labels=3)  # grid t, h, w = 3, 2, 4: P = 24, S = 8


def test_model1_by_hand():
    # embedding 24 tubelets x K=2*4*4*3=96 x D=16; per block (N = 25): Q,K,V,O 4*25*16*16, QK^T and PV 2*25*25*16,
    # MLP 2*25*16*24; head 16*3
    per_block = 4 * 25 * 16 * 16 + 2 * 25 * 25 * 16 + 2 * 25 * 16 * 24
    assert per_block == 25600 + 20000 + 19200
    assert flops(ViViTConfig(**TINY)) == 24 * 96 * 16 + 2 * per_block + 16 * 3 == 36864 + 129600 + 48
    # gap: no CLS token (N = 24), and a pre-logits layer of 6 before the head
    gap_block = 4 * 24 * 256 + 2 * 24 * 24 * 16 + 2 * 24 * 16 * 24
    assert flops(ViViTConfig(**TINY, classifier="gap", representation_size=6)) == \
        36864 + 2 * gap_block + 16 * 6 + 6 * 3


def test_model2_by_hand():
    c = ViViTConfig(**TINY, attention_type="factorized_encoder", temporal_num_layers=1)
    spatial = 3 * (4 * 9 * 256 + 2 * 9 * 9 * 16 + 2 * 9 * 16 * 24)  # 3 slices of 8 tokens + CLS
    temporal = 4 * 4 * 256 + 2 * 4 * 4 * 16 + 2 * 4 * 16 * 24  # 3 slice tokens + CLS
    assert flops(c) == 36864 + 2 * spatial + temporal + 48
    b = flops(c, breakdown=True)
    assert b["total"] == flops(c) and b["embedding"] == 36864 and b["head"] == 48


def test_model3_by_hand():
    c = ViViTConfig(**TINY, attention_type="factorized_self_attention_block", classifier="gap")
    time = 8 * (4 * 3 * 256 + 2 * 3 * 3 * 16)  # 8 locations, 3 tokens each
    space = 3 * (4 * 8 * 256 + 2 * 8 * 8 * 16)  # 3 slices, 8 tokens each
    assert flops(c) == 36864 + 2 * (time + space + 2 * 24 * 16 * 24) + 48


def test_model4_by_hand():
    c = ViViTConfig(**TINY, attention_type="factorized_dot_product_attention", classifier="gap")
    # projections as Model 1 (24 tokens); 2 time heads of d=4: 8 locations x 2 x (3*3*4) x 2 (QK^T, PV);
    # 2 space heads: 3 slices x 2 x (8*8*4) x 2
    products = 8 * 2 * 3 * 3 * 4 * 2 + 3 * 2 * 8 * 8 * 4 * 2
    assert products == 24 * 16 * (3 + 8)
    assert flops(c) == 36864 + 2 * (4 * 24 * 256 + products + 2 * 24 * 16 * 24) + 48


VIVIT_B = dict(num_labels=400)  # the defaults are ViViT-B/16x2, 32 frames of 224x224
TABLE_2 = [  # (variant, paper GFLOPs)
    (dict(), 455.2),
    (dict(attention_type="factorized_encoder"), 284.4),
    (dict(attention_type="factorized_self_attention_block", classifier="gap"), 372.3),
    (dict(attention_type="factorized_dot_product_attention", classifier="gap"), 277.1),
]


@pytest.mark.parametrize("variant,paper", TABLE_2)
def test_vivit_b_against_table_2(variant, paper):
    ours = flops(ViViTConfig(**VIVIT_B, **variant)) / 1e9
    assert 0.99 * paper < ours < paper, (variant, ours, paper)  # below: Table 2 also counts elementwise work


@pytest.mark.parametrize("frames,paper", [(32, 995.3), (128, 3980.4)])
def test_vivit_l_factorised_encoder_against_section_4_2(frames, paper):
    c = ViViTConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                    attention_type="factorized_encoder", num_frames=frames, num_labels=400)
    assert 0.99 * paper < flops(c) / 1e9 < paper


@pytest.mark.parametrize("size,paper", [(224, 1446), (288, 2919), (320, 3992)])
def test_vivit_l_model1_against_table_4(size, paper):
    c = ViViTConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                    image_size=size, num_labels=400)
    assert 0.99 * paper < flops(c) / 1e9 < paper
