export { testProvider, testAccountSourceType, type TestProviderOptions } from "./test-provider.js";
