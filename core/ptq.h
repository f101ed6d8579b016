/* ptq: being written (issue 5). */
