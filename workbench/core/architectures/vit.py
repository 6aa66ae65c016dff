"""Vision Transformer (Dosovitskiy et al., 2021) in plain ``torch.nn``.

Module paths: ``patch_embed.proj`` (strided conv that cuts the image into
patches), the parameters ``cls_token`` and ``pos_embed``, then
``encoder.layers.<i>`` with ``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``,
``mlp.fc1``, ``mlp.act``, ``mlp.fc2``; finally ``encoder.norm`` and ``head``.

Attention is written out as ``softmax(q @ k^T * scale) @ v`` rather than
``scaled_dot_product_attention`` / ``nn.MultiheadAttention`` so that traced,
exported and ONNX graphs show plain MatMul and Softmax nodes that graph
readers and quantisers understand.
"""

from __future__ import annotations

import torch
from torch import nn

_LN_EPS = 1e-6  # the value used by the published ViT checkpoints


class PatchEmbed(nn.Module):
    """Image (B, C, H, W) -> patch tokens (B, N, dim) via a stride-``patch`` conv."""

    def __init__(self, in_channels: int, dim: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, patch_size, patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)  # (B, dim, H/p, W/p)
        return x.flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with one fused ``qkv`` projection."""

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.softmax = nn.Softmax(dim=-1)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        # (B, N, 3*C) -> (3, B, heads, N, head_dim)
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = self.softmax(q @ k.transpose(-2, -1) * self.scale)
        out = (attn @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj_drop(self.proj(out))


class MLP(nn.Module):
    """Linear -> GELU -> Linear feed-forward block."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop2 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class EncoderBlock(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=_LN_EPS)
        self.attn = Attention(dim, num_heads, dropout)
        self.norm2 = nn.LayerNorm(dim, eps=_LN_EPS)
        self.mlp = MLP(dim, mlp_dim, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Encoder(nn.Module):
    """Stack of encoder blocks followed by a final LayerNorm."""

    def __init__(self, depth: int, dim: int, num_heads: int, mlp_dim: int,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            *[EncoderBlock(dim, num_heads, mlp_dim, dropout) for _ in range(depth)]
        )
        self.norm = nn.LayerNorm(dim, eps=_LN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.layers(x))


class VisionTransformer(nn.Module):
    """ViT classifier with a class token and learned position embeddings.

    Args:
        image_size: input side length (square images); fixes the token count.
        patch_size: side length of each patch; must divide ``image_size``.
        dim: token width.
        depth: number of encoder blocks.
        num_heads: attention heads per block.
        mlp_dim: hidden width of each block's MLP.
        num_classes: size of the output logits.
        in_channels: channels of the input image.
        dropout: dropout after embeddings, attention projection and MLP.
    """

    def __init__(self, image_size: int = 224, patch_size: int = 16, dim: int = 768,
                 depth: int = 12, num_heads: int = 12, mlp_dim: int = 3072,
                 num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.0) -> None:
        super().__init__()
        if image_size % patch_size != 0:
            raise ValueError(f"patch_size {patch_size} must divide image_size {image_size}")
        if min(depth, num_classes, in_channels, dim, mlp_dim) < 1:
            raise ValueError("depth, num_classes, in_channels, dim and mlp_dim must be >= 1")
        self.image_size = image_size
        self.patch_size = patch_size
        num_tokens = (image_size // patch_size) ** 2 + 1  # +1 for the class token

        self.patch_embed = PatchEmbed(in_channels, dim, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens, dim))
        self.pos_drop = nn.Dropout(dropout)
        self.encoder = Encoder(depth, dim, num_heads, mlp_dim, dropout)
        self.head = nn.Linear(dim, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        fan_in = self.patch_embed.proj.in_channels * self.patch_size ** 2
        nn.init.trunc_normal_(self.patch_embed.proj.weight, std=(1.0 / fan_in) ** 0.5)
        nn.init.zeros_(self.patch_embed.proj.bias)
        for m in self.encoder.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.normal_(m.bias, std=1e-6)
        # Small random head rather than zeros: an untrained model then still
        # gives input-dependent logits, which compression comparisons need.
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + self.pos_embed
        x = self.encoder(self.pos_drop(x))
        return self.head(x[:, 0])


def vit_b_16(num_classes: int = 1000, in_channels: int = 3, image_size: int = 224,
             dropout: float = 0.0) -> VisionTransformer:
    """Build ViT-Base/16 (86,567,656 parameters at defaults); returns an untrained model."""
    return VisionTransformer(image_size=image_size, patch_size=16, dim=768, depth=12,
                             num_heads=12, mlp_dim=3072, num_classes=num_classes,
                             in_channels=in_channels, dropout=dropout)


def vit_small(image_size: int = 32, patch_size: int = 4, dim: int = 192, depth: int = 6,
              num_heads: int = 3, mlp_dim: int = 768, num_classes: int = 10,
              in_channels: int = 3, dropout: float = 0.0) -> VisionTransformer:
    """Build a small ViT; defaults suit 3x32x32 images (65 tokens, about 2.7 M parameters).

    Every architectural argument can be overridden, e.g. ``image_size=224,
    patch_size=16`` for ImageNet-sized input.  Returns an untrained model.
    """
    return VisionTransformer(image_size=image_size, patch_size=patch_size, dim=dim, depth=depth,
                             num_heads=num_heads, mlp_dim=mlp_dim, num_classes=num_classes,
                             in_channels=in_channels, dropout=dropout)
