/* calibrate: being written (issue 5). */
