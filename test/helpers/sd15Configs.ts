// SD 1.5 config.json contents (shared/reference/sd-architecture.md §1.3–1.5), keys as in the hub files.

export const SD15_UNET = {
  act_fn: 'silu', attention_head_dim: 8, block_out_channels: [320, 640, 1280, 1280], center_input_sample: false,
  cross_attention_dim: 768, down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  downsample_padding: 1, flip_sin_to_cos: true, freq_shift: 0, in_channels: 4, layers_per_block: 2, mid_block_scale_factor: 1,
  norm_eps: 1e-5, norm_num_groups: 32, out_channels: 4, sample_size: 64,
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
};
export const SD15_VAE = {
  act_fn: 'silu', block_out_channels: [128, 256, 512, 512], down_block_types: Array(4).fill('DownEncoderBlock2D'),
  in_channels: 3, latent_channels: 4, layers_per_block: 2, norm_num_groups: 32, out_channels: 3, sample_size: 512,
  up_block_types: Array(4).fill('UpDecoderBlock2D'),
};
export const SD15_CLIP = {
  hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12, max_position_embeddings: 77,
  hidden_act: 'quick_gelu', layer_norm_eps: 1e-5, vocab_size: 49408, projection_dim: 768,
};
