export {
  Aggregator,
  CrossAttention,
  CrossAttentionBlock,
  FeedForward,
  type AggregatorMemory,
  type AggregatorOptions,
  type AttentionSink,
  type BlockKV,
  type MemoryInput,
} from "./aggregator.js";
export {
  aggregateFull,
  aggregateHierarchical,
  aggregateHierarchicalAsync,
  type AsyncMemorySource,
  type MemorySource,
} from "./hierarchical.js";
