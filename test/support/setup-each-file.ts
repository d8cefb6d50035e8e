import { hideKafkajsTimeoutWarning } from '../../src/kafka/quirks.ts';

hideKafkajsTimeoutWarning();
