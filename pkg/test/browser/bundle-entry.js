// The package as a bundler user imports it: by name, resolved through its exports map.
import * as wx from 'wxedge';
import { run } from './page.js';

run(wx);
