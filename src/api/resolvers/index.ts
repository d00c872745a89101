import type { Resolvers } from '../generated/schemaTypes';
import { Mutation } from './mutation';
import { ModelInfo } from './modelInfo';
import { Query } from './query';
import { Subscription } from './subscription';
import { DateTime, Image, Mask, Node, NodeStats, Tree, TreeConnection, TreeEvent, TreeMember } from './types';

export const resolvers: Resolvers = { Query, Mutation, Subscription, DateTime, ModelInfo, Node, Image, Mask, NodeStats, Tree, TreeMember, TreeConnection, TreeEvent };
