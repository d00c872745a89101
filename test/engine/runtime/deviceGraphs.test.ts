// Which attention form each device's graphs use (runtime/deviceGraphs.ts), and the WebGPU override.
import { graphOptionsFor, rememberAttentionChoice } from '../../../src/engine/runtime/deviceGraphs';

describe('graphOptionsFor', () => {
  test('CPU and CUDA keep the fused MultiHeadAttention (builder default); WebGPU writes attention out and pads conv input channels to a multiple of 4', () => {
    expect(graphOptionsFor('cpu', {})).toEqual({});
    expect(graphOptionsFor('cuda', {})).toEqual({});
    expect(graphOptionsFor('webgpu', {})).toEqual({ attention: 'matmul', convChannelMultiple: 4 });
  });

  test('FISEDIT_WEBGPU_ATTENTION picks the WebGPU form; anything else is refused, naming the variable', () => {
    expect(graphOptionsFor('webgpu', { FISEDIT_WEBGPU_ATTENTION: 'mha' })).toEqual({ attention: 'mha', convChannelMultiple: 4 });
    expect(graphOptionsFor('webgpu', { FISEDIT_WEBGPU_ATTENTION: ' matmul ' })).toEqual({ attention: 'matmul', convChannelMultiple: 4 });
    expect(graphOptionsFor('cpu', { FISEDIT_WEBGPU_ATTENTION: 'mha' })).toEqual({});
    expect(graphOptionsFor('webgpu', { FISEDIT_WEBGPU_ATTENTION: 'mha-unfused' })).toEqual({ attention: 'mha-unfused', convChannelMultiple: 4 });
    expect(graphOptionsFor('webgpu', { FISEDIT_WEBGPU_ATTENTION: 'chunked' })).toEqual({ attention: 'chunked', convChannelMultiple: 4 });
    expect(graphOptionsFor('webgpu', { FISEDIT_WEBGPU_ATTENTION: 'chunked:64' })).toEqual({ attention: 'chunked', attentionChunks: 64, convChannelMultiple: 4 });
    expect(() => graphOptionsFor('webgpu', { FISEDIT_WEBGPU_ATTENTION: 'flash' })).toThrow(/FISEDIT_WEBGPU_ATTENTION must be auto, mha, matmul/);
    expect(() => graphOptionsFor('webgpu', { FISEDIT_WEBGPU_ATTENTION: 'mha:4' })).toThrow(/FISEDIT_WEBGPU_ATTENTION/);
    expect(() => graphOptionsFor('webgpu', { FISEDIT_WEBGPU_ATTENTION: 'chunked:0' })).toThrow(/FISEDIT_WEBGPU_ATTENTION/);
  });

  test('auto (the default) takes the form the start-up probe chose, and the written-out form before any probe ran', () => {
    try {
      expect(graphOptionsFor('webgpu', { FISEDIT_WEBGPU_ATTENTION: 'auto' })).toEqual({ attention: 'matmul', convChannelMultiple: 4 });
      rememberAttentionChoice('mha');
      expect(graphOptionsFor('webgpu', {})).toEqual({ attention: 'mha', convChannelMultiple: 4 });
      expect(graphOptionsFor('webgpu', { FISEDIT_WEBGPU_ATTENTION: 'auto' })).toEqual({ attention: 'mha', convChannelMultiple: 4 });
      // A form named in the environment wins over the probe's; other devices ignore both.
      expect(graphOptionsFor('webgpu', { FISEDIT_WEBGPU_ATTENTION: 'chunked:8' })).toEqual({ attention: 'chunked', attentionChunks: 8, convChannelMultiple: 4 });
      expect(graphOptionsFor('cpu', {})).toEqual({});
      expect(() => rememberAttentionChoice('flash')).toThrow(/FISEDIT_WEBGPU_ATTENTION must be/);
    } finally {
      rememberAttentionChoice(null);
    }
    expect(graphOptionsFor('webgpu', {})).toEqual({ attention: 'matmul', convChannelMultiple: 4 });
  });
});
