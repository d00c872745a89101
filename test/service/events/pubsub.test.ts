import { MemoryPubSub } from '../../../src/service/events/memoryPubSub';
import { RedisPubSub } from '../../../src/service/events/redisPubSub';
import { REDIS_URL, redisAvailable } from '../../helpers/services';
import { runPubSubConformance } from './pubsubConformance';

runPubSubConformance('MemoryPubSub', async () => new MemoryPubSub());

runPubSubConformance(
  'RedisPubSub',
  async () => ((await redisAvailable()) ? new RedisPubSub({ url: REDIS_URL, prefix: `fisedit-test-${process.pid}:` }) : null),
  `no Redis server at ${REDIS_URL}`,
);

describe('MemoryPubSub', () => {
  it('forgets a topic when its last subscriber leaves', async () => {
    const ps = new MemoryPubSub();
    const s = await ps.subscribe('t');
    expect(ps.subscriberCount('t')).toBe(1);
    s.close();
    expect(ps.subscriberCount('t')).toBe(0);
  });
});
